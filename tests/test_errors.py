"""Every error path answers `{"error": {"code", "message", "field"}}` with a 4xx, never a
500 or a traceback."""

from __future__ import annotations

import base64
import json
import sqlite3

import pytest

from .conftest import order_body, paid_order


def assert_error(reply, status: int, code: str, field: str | None) -> None:
    assert reply.status == status, reply.body
    assert set(reply.body) >= {"error"}
    error = reply.error
    assert (error["code"], error["field"]) == (code, field), error
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in error["message"]


BAD_ORDERS = [
    ("not json", "invalid_json", "body"),
    ("[1, 2]", "invalid_body", "body"),
    ("", "invalid_body", "body"),
    ('{"store_id": 1}', "invalid_field", "lines"),
    ('{"store_id": "1", "lines": [{"sku_id": 1, "qty": 1}], "fulfilment": "pickup"}',
     "invalid_field", "store_id"),
    ('{"store_id": 1, "lines": [{"sku_id": 1, "qty": 1.5}], "fulfilment": "pickup"}',
     "invalid_field", "lines.0.qty"),
    ('{"store_id": 1, "lines": [{"sku_id": 1, "qty": 0}], "fulfilment": "pickup"}',
     "invalid_field", "lines.0.qty"),
    ('{"store_id": 1, "lines": [], "fulfilment": "pickup"}', "invalid_field", "lines"),
    ('{"store_id": 1, "lines": [{"sku_id": 1, "qty": 1}], "fulfilment": "drone"}',
     "invalid_field", "fulfilment"),
    ('{"store_id": 1, "lines": [{"sku_id": 1, "qty": 1}], "fulfilment": "pickup", "x": 1}',
     "invalid_field", "x"),
    ('{"store_id": -3, "lines": [{"sku_id": 1, "qty": 1}], "fulfilment": "pickup"}',
     "invalid_field", "store_id"),
]


@pytest.mark.parametrize(("body", "code", "field"), BAD_ORDERS)
async def test_bad_order_bodies_name_their_field(mall, body, code, field):
    customer = await mall.api.login("fuzzy")
    reply = await mall.api.post("/api/v1/orders", token=customer, data=body,
                                headers={"Content-Type": "application/json"})
    assert_error(reply, 400, code, field)


async def test_bad_product_and_store_bodies(mall, shop):
    api = mall.api
    products = f"/api/v1/merchant/stores/{shop.store_id}/products"
    cases = [
        ({"name": "虾", "price_fen": "18.00"}, "price_fen"),
        ({"name": "虾", "price_fen": 12.5}, "price_fen"),
        ({"name": "虾", "price_fen": 0}, "price_fen"),
        ({"name": "", "price_fen": 100}, "name"),
        ({"name": "虾", "price_fen": 100, "tags": ["a,b"]}, "tags.0"),
        ({"name": "虾", "price_fen": 100, "scenes": ["Late Night"]}, "scenes.0"),
    ]
    for body, field in cases:
        assert_error(await api.post(products, token=shop.merchant, json=body), 400,
                     "invalid_field", field)
    store = {"name": "n", "kind": "fruit", "district": "雨花区", "lat": 28.1, "lng": 113.0}
    for change, code, field in [
        ({"lat": 123}, "invalid_field", "lat"),
        ({"opens_at": "25:00"}, "invalid_field", "opens_at"),
        ({"district": "朝阳区"}, "unknown_district", "district"),
        ({"kind": "casino"}, "unknown_kind", "kind"),
    ]:
        assert_error(await api.post("/api/v1/admin/stores", token=shop.operator,
                                    json=store | change), 400, code, field)


async def test_bad_queries_and_paths(mall, shop):
    api = mall.api
    assert_error(await api.get("/api/v1/stores", params={"lat": "28.1"}), 400,
                 "invalid_field", "lng")
    assert_error(await api.get("/api/v1/stores", params={"lat": "x", "lng": "1"}), 400,
                 "invalid_field", "lat")
    assert_error(await api.get("/api/v1/stores", params={"radius_km": "500"}), 400,
                 "invalid_field", "radius_km")
    assert_error(await api.get("/api/v1/stores", params={"district": "朝阳区"}), 400,
                 "unknown_district", "district")
    assert_error(await api.get("/api/v1/stores", params={"bogus": "1"}), 400,
                 "invalid_field", "bogus")
    assert_error(await api.get(f"/api/v1/stores/{shop.store_id}/products",
                               params={"cursor": "!!"}), 400, "invalid_cursor", "cursor")
    assert_error(await api.get(f"/api/v1/stores/{shop.store_id}/products",
                               params={"cursor": "ImFiYyI"}), 400, "invalid_cursor", "cursor")
    assert_error(await api.get("/api/v1/stores/abc"), 404, "not_found", "store_id")
    assert_error(await api.get("/api/v1/stores/99999999999999999999999"), 404, "not_found",
                 "store_id")
    assert_error(await api.get("/api/v1/stores/424242"), 404, "not_found", "store_id")
    assert_error(await api.get("/api/v1/stores/424242/products"), 404, "not_found", "store_id")
    assert_error(await api.get(f"/api/v1/stores/{shop.store_id}/products/777"), 404,
                 "not_found", "product_id")
    assert_error(await api.get("/api/v1/no/such/route"), 404, "not_found", None)
    assert_error(await api.get(f"/api/v1/merchant/stores/{shop.store_id}/orders",
                               token=shop.merchant, params={"date": "2026-02-31"}), 400,
                 "invalid_date", "date")
    assert_error(await api.get(f"/api/v1/merchant/stores/{shop.store_id}/orders",
                               token=shop.merchant, params={"status": "lost"}), 400,
                 "unknown_status", "status")
    reply = await api.call("DELETE", "/api/v1/orders")
    assert_error(reply, 405, "method_not_allowed", None)
    assert "Allow" in reply.headers


# Ids a fuzzer wrote with digits that str.isdigit() accepts but int() does not (once 500s).
ODD_IDS = ["%C2%B9", "%C2%B2", "%D9%A3", "%EF%BC%91", "%E2%91%A0", "0", "1234567890123456789",
           "+1", "-1", "%1C", "W%C3%9E"]


async def test_path_ids_are_ascii_digits_or_404(mall, shop):
    api, base = mall.api, f"/api/v1/merchant/stores/{shop.store_id}"
    for odd in ODD_IDS:
        for path in (f"/api/v1/merchant/stores/{odd}/orders",
                     f"/api/v1/merchant/stores/{odd}/pickup-queue",
                     f"/api/v1/merchant/stores/{odd}/orders/%1C"):
            assert_error(await api.get(path, token=shop.operator), 404, "not_found", "store_id")
        assert_error(await api.get(f"{base}/orders/{odd}", token=shop.merchant), 404,
                     "not_found", "order_id")
        assert_error(await api.post(f"{base}/orders/{odd}/delivered", token=shop.merchant),
                     404, "not_found", "order_id")
        assert_error(await api.get(f"/api/v1/stores/{odd}"), 404, "not_found", "store_id")
    assert 'status_class="5xx"' not in await api.metrics()


def _forged_cursor(position: int) -> str:
    """A cursor as the server encodes one (base64 of a JSON int), written here by hand."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


async def test_forged_cursors_beyond_any_id_are_400(mall, shop):
    """A cursor holding an int past SQLite's 64 bits was a 500 (OverflowError) on every list."""
    api, customer = mall.api, await mall.api.login("forger")
    merchant = f"/api/v1/merchant/stores/{shop.store_id}"
    lists = [("/api/v1/orders", customer), ("/api/v1/stores?district=天心区", None),
             (f"/api/v1/stores/{shop.store_id}/products", None),
             (f"{merchant}/orders", shop.merchant), (f"{merchant}/audit-log", shop.merchant)]
    for path, token in lists:
        sep = "&" if "?" in path else "?"
        for position in (2**62 + 1, 2**63, 10**30):
            assert_error(await api.get(f"{path}{sep}cursor={_forged_cursor(position)}",
                                       token=token), 400, "invalid_cursor", "cursor")
        # The largest id-sized position is still a cursor: an empty page, not an error.
        reply = await api.get(f"{path}{sep}cursor={_forged_cursor(2**62)}", token=token)
        assert reply.status == 200, reply.body
    assert 'status_class="5xx"' not in await api.metrics()


async def test_patterned_fields_take_ascii_digits_only(mall, shop):
    """`\\d` in pydantic patterns matched any Unicode digit: a pickup code in Arabic-Indic
    digits was a 500 (hmac.compare_digest refuses non-ASCII text), and such phones and opening
    hours were stored."""
    api, customer = mall.api, await mall.api.login("digits")
    order_id = await paid_order(mall, shop, customer)
    base = f"/api/v1/merchant/stores/{shop.store_id}"
    assert (await api.post(f"{base}/orders/{order_id}/ready", token=shop.merchant)).status == 200
    for code in ("١٢٣٤٥٦", "１２３４５６", "12345٦"):
        assert_error(await api.post(f"{base}/orders/{order_id}/pickup", token=shop.merchant,
                                    json={"code": code}), 400, "invalid_field", "code")
    address = {"contact_name": "张三", "district": "天心区", "detail": "坡子街1号"}
    for phone in ("138٠٠٠٠٠٠٠٠", "1380013８000"):
        assert_error(await api.post("/api/v1/me/addresses", token=customer,
                                    json=address | {"phone": phone}), 400, "invalid_field",
                     "phone")
    store = {"name": "夜宵", "kind": "snacks", "district": "天心区", "lat": 28.19, "lng": 112.97}
    assert_error(await api.post("/api/v1/admin/stores", token=shop.operator,
                                json=store | {"opens_at": "08:0٠"}), 400, "invalid_field",
                 "opens_at")
    assert_error(await api.get(f"{base}/orders", token=shop.merchant,
                               params={"date": "٢٠٢٦-١١-٢٥"}), 400, "invalid_field", "date")
    assert 'status_class="5xx"' not in await api.metrics()


async def test_oversized_bodies_get_413(mall, shop):
    customer = await mall.api.login("bulky")
    body = order_body(shop) | {"padding": "x" * 100_000}
    assert_error(await mall.api.post("/api/v1/orders", token=customer, json=body), 413,
                 "body_too_large", "body")


async def test_idempotency_key_shape(mall, shop):
    customer = await mall.api.login("keyed")
    reply = await mall.api.post("/api/v1/orders", token=customer, json=order_body(shop),
                                headers={"Idempotency-Key": "k" * 256})
    assert_error(reply, 400, "invalid_idempotency_key", "Idempotency-Key")


async def test_no_request_in_this_module_produced_a_5xx(mall, shop):
    """The metrics count every status class the mall answered with."""
    await test_bad_queries_and_paths(mall, shop)
    await test_bad_product_and_store_bodies(mall, shop)
    text = await mall.api.metrics()
    assert 'status_class="4xx"' in text
    assert 'status_class="5xx"' not in text


@pytest.mark.slow  # waits out the busy timeout
@pytest.mark.sqlite_only
async def test_a_write_blocked_past_the_busy_timeout_is_a_503_to_try_again(mall, shop):
    """Another process holding SQLite's write lock for longer than the 5 s busy timeout: the
    order is not made, and the client is told to try again, not shown a 500."""
    customer = await mall.api.login("unlucky")
    lock = sqlite3.connect(mall.config.db_path, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        blocked = await mall.api.post("/api/v1/orders", token=customer,
                                      json={"store_id": shop.store_id, "fulfilment": "pickup",
                                            "lines": [{"sku_id": shop.sku_id, "qty": 1}]})
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert blocked.status == 503 and blocked.error["code"] == "database_busy"
    assert blocked.headers["Retry-After"] == "1"
    level = await mall.api.get(f"/api/v1/merchant/stores/{shop.store_id}/inventory/"
                               f"{shop.sku_id}", token=shop.merchant)
    assert level.body["reserved"] == 0
