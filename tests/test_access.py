"""Unified auth: who may see and change what."""

from __future__ import annotations

import time

import pytest

from mall.auth import TokenSigner
from mall.errors import Unauthorized

from .conftest import open_shop, order_body, stored_bytes


async def test_customer_a_cannot_see_customer_b_order(mall, shop):
    api = mall.api
    alice, bob = await api.login("alice"), await api.login("bob")
    order = await api.post("/api/v1/orders", token=alice, json=order_body(shop))
    path = f"/api/v1/orders/{order.body['order_id']}"
    assert (await api.get(path, token=alice)).status == 200
    hidden = await api.get(path, token=bob)
    assert hidden.status == 404 and hidden.error["code"] == "not_found"
    assert (await api.post(f"{path}/cancel", token=bob)).status == 404
    assert (await api.get("/api/v1/orders", token=bob)).body["items"] == []
    assert len((await api.get("/api/v1/orders", token=alice)).body["items"]) == 1


async def test_customer_addresses_are_private_and_masked(mall):
    api = mall.api
    alice, bob = await api.login("alice"), await api.login("bob")
    made = await api.post("/api/v1/me/addresses", token=alice, json={
        "contact_name": "刘晓明", "phone": "13812345678", "district": "岳麓区",
        "detail": "麓山南路932号中南大学新校区"})
    assert made.status == 201, made.body
    assert made.body["contact_masked"].startswith("刘** 138****5678 麓山南路93")
    assert "13812345678" not in str(made.body)
    path = f"/api/v1/me/addresses/{made.body['id']}"
    assert (await api.get(path, token=alice)).status == 200
    assert (await api.get(path, token=bob)).status == 404
    raw = stored_bytes(mall.config.db_path)
    assert b"13812345678" not in raw and "刘晓明".encode() not in raw


async def test_merchant_of_store_x_cannot_change_store_y(mall):
    x = await open_shop(mall, merchant_openid="merchant-x", name="X 店")
    y = await open_shop(mall, merchant_openid="merchant-y", name="Y 店")
    api = mall.api
    y_stock = f"/api/v1/merchant/stores/{y.store_id}/inventory/{y.sku_id}"
    refused = await api.put(y_stock, token=x.merchant, json={"stock": 0})
    assert refused.status == 403 and refused.error == {
        "code": "not_store_staff", "message": "you are not staff of this store",
        "field": "store_id"}
    # Its own SKU through another store's path is no SKU of that store.
    cross = await api.put(f"/api/v1/merchant/stores/{x.store_id}/inventory/{y.sku_id}",
                          token=x.merchant, json={"stock": 0})
    assert cross.status == 404
    for path in ("orders", "pickup-queue", "audit-log"):
        assert (await api.get(f"/api/v1/merchant/stores/{y.store_id}/{path}",
                              token=x.merchant)).status == 403
    assert (await api.put(y_stock, token=y.merchant, json={"stock": 7})).status == 200
    assert (await api.put(y_stock, token=x.operator, json={"stock": 8})).status == 200


async def test_roles_and_tokens(mall, shop):
    api = mall.api
    customer = await api.login("plain")
    store = {"name": "n", "kind": "fruit", "district": "雨花区", "lat": 28.1, "lng": 113.0}
    cases = [
        (None, 401, "login_required"),
        ("not-a-token", 401, "invalid_token"),
        (customer + "x", 401, "invalid_token"),
        (customer, 403, "operator_only"),
        (shop.merchant, 403, "operator_only"),
    ]
    for token, status, code in cases:
        reply = await api.post("/api/v1/admin/stores", token=token, json=store)
        assert (reply.status, reply.error["code"]) == (status, code)
    assert (await api.post("/api/v1/admin/stores", json=store,
                           headers={"Authorization": "Basic abc"})).status == 401
    expired = TokenSigner(await _secret(mall)).issue(1, "operator", 1)
    reply = await api.post("/api/v1/admin/stores", token=expired, json=store)
    assert (reply.status, reply.error["code"]) == (401, "token_expired")
    assert (await api.post("/api/v1/admin/stores", token=shop.operator, json=store)).status == 201
    login = await api.post("/api/v1/auth/wx-login", json={"code": "merchant-1"})
    assert login.status == 401 and login.error["code"] == "invalid_code"
    session = (await api.post("/api/v1/auth/wx-login", json={"code": "sandbox:merchant-1"})).body
    assert session["roles"] == ["customer", "merchant"]
    assert session["store_ids"] == [shop.store_id]


async def test_a_token_verified_before_expires_all_the_same(mall):
    """Verified tokens are remembered; the memory must not outlive the token: a token that
    was good a moment ago is refused once its time is up, and a forged one never enters."""
    signer = mall.services.signer
    soon = time.time() + 2
    token = TokenSigner(await _secret(mall)).issue(7, "customer", int(soon) + 1)
    assert signer.verify(token, time.time()).user_id == 7       # verified, remembered
    assert signer.verify(token, time.time()).user_id == 7       # from memory
    with pytest.raises(Unauthorized, match="expired"):
        signer.verify(token, soon + 1.5)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for _ in range(2):
        with pytest.raises(Unauthorized, match="signature"):
            signer.verify(forged, time.time())
    customer = await mall.api.login("remembered")
    assert (await mall.api.get("/api/v1/orders", token=customer)).status == 200
    gone = await mall.api.delete("/api/v1/me", token=customer)
    assert gone.status == 200, gone.body
    # A deleted account's remembered token is refused all the same (checked apart).
    assert (await mall.api.get("/api/v1/orders", token=customer)).status == 401


async def _secret(mall) -> str:
    rows = await mall.services.db.reader().execute_fetchall(
        "SELECT value FROM settings WHERE key = 'token_secret'")
    return rows[0][0]


async def test_every_merchant_and_operator_action_is_audited(mall, shop):
    api = mall.api
    log = await api.get(f"/api/v1/merchant/stores/{shop.store_id}/audit-log",
                        token=shop.merchant)
    actions = [(e["action"], e["actor_role"]) for e in reversed(log.body["items"])]
    assert actions == [("store.create", "operator"), ("store.staff.add", "operator"),
                       ("product.create", "merchant"), ("inventory.set", "merchant")]
