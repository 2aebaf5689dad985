"""After-sales refunds through the real mall and the real payment sandbox: asked before or
after pickup, decided by the store, paid back by the payer and applied exactly once, with
the goods never picked up back on the shelf and the coupon given back."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import pytest

from mall.verification import verify

from .conftest import Clock, open_shop, order_body, paid_order
from .test_coupons import issue_coupon
from .test_payments import keyring, send


async def ask(mall, customer: str, order_id: int, reason: str = "changed_mind"):
    return await mall.api.post(f"/api/v1/orders/{order_id}/refund", token=customer,
                               json={"reason": reason})


async def decide(mall, shop, order_id: int, decision: str = "approve", **extra):
    return await mall.api.post(f"/api/v1/merchant/stores/{shop.store_id}/orders/{order_id}"
                               "/refund", token=shop.merchant,
                               json={"decision": decision, **extra})


async def order_status(mall, customer: str, order_id: int, until: tuple[str, ...] = (),
                       seconds: float = 3.0) -> dict:
    """The order, once in one of `until` (waiting for the payer's notification)."""
    for _ in range(int(seconds * 50)):
        view = await mall.api.get(f"/api/v1/orders/{order_id}", token=customer)
        if not until or view.body["status"] in until:
            return view.body
        await asyncio.sleep(0.02)
    raise AssertionError(f"order {order_id} is {view.body['status']}, not {until}")


async def stock(mall, shop) -> dict:
    return (await mall.api.get(f"/api/v1/merchant/stores/{shop.store_id}/inventory/"
                               f"{shop.sku_id}", token=shop.merchant)).body


def payer_rows(mall, sql: str) -> list:
    """Rows of the payment sandbox's own books (its own SQLite file)."""
    with sqlite3.connect(mall.payer_db) as conn:
        return conn.execute(sql).fetchall()


def signed(mall, body: bytes) -> dict:
    """A notification signed now as the payer signs (its platform key)."""
    return {"body": body.decode(),
            "headers": keyring(mall).platform_signer().headers(body, int(time.time()))}


async def test_a_refund_before_pickup_puts_the_goods_back_and_the_coupon_too(mall, shop):
    customer = await mall.api.login("regretful")
    coupon = await issue_coupon(mall, shop, threshold_fen=0, kind="fixed")
    claimed = await mall.api.post(f"/api/v1/coupons/{coupon['template_id']}/claim",
                                  token=customer)
    order_id = await paid_order(mall, shop, customer, 2, coupon_id=claimed.body["coupon_id"])
    assert (await stock(mall, shop))["reserved"] == 2
    asked = await ask(mall, customer, order_id)
    assert asked.status == 201, asked.body
    assert asked.body["status"] == "requested" and asked.body["from_status"] == "paid"
    assert asked.body["amount_fen"] == 2 * shop.price_fen - 300
    assert (await order_status(mall, customer, order_id))["status"] == "refund_requested"
    # While the store decides, the goods cannot be handed over.
    code = (await mall.api.get(f"/api/v1/orders/{order_id}", token=customer)).body
    assert "pickup_code" not in code
    listed = await mall.api.get(f"/api/v1/merchant/stores/{shop.store_id}/refunds",
                                token=shop.merchant, params={"status": "requested"})
    assert [item["order_id"] for item in listed.body["items"]] == [order_id]
    approved = await decide(mall, shop, order_id)
    assert approved.status == 200, approved.body
    view = await order_status(mall, customer, order_id, ("refunded",))
    assert view["coupon"] is None and view["closed_at"] is not None
    assert (await stock(mall, shop))["reserved"] == 0
    assert (await stock(mall, shop))["on_hand"] == 10
    mine = await mall.api.get("/api/v1/me/coupons", token=customer)
    assert mine.body["items"][0]["status"] == "available"
    refund = await mall.api.get(f"/api/v1/orders/{order_id}/refund", token=customer)
    assert refund.body["status"] == "succeeded"
    assert payer_rows(mall, "SELECT amount_fen, status FROM refunds") == [
        (2 * shop.price_fen - 300, "SUCCESS")]
    assert await mall.api.metric(
        'mall_refund_settlements_total{how="notification",outcome="applied"}') == 1
    assert await mall.api.metric(
        'mall_refunds_total{change="refunded",reason="changed_mind"}') == 1
    audit = await mall.api.get(f"/api/v1/merchant/stores/{shop.store_id}/audit-log",
                               token=shop.merchant)
    assert audit.body["items"][0]["action"] == "refund.approve"
    assert all(f.holds for f in await verify(mall.config.db_path)), \
        [f for f in await verify(mall.config.db_path) if not f.holds]


async def test_the_refund_notification_repeated_is_applied_once(mall, shop):
    customer = await mall.api.login("twice")
    order_id = await paid_order(mall, shop, customer)
    await ask(mall, customer, order_id)
    await decide(mall, shop, order_id)
    await order_status(mall, customer, order_id, ("refunded",))
    (body,), = payer_rows(mall, "SELECT body FROM outbox"
                            " WHERE CAST(body AS TEXT) LIKE '%REFUND.SUCCESS%'")
    note = signed(mall, bytes(body))
    replies = await asyncio.gather(*(send(mall, note) for _ in range(5)))
    assert {reply.status for reply in replies} == {204}
    assert (await stock(mall, shop))["reserved"] == 0          # released once, not six times
    assert (await stock(mall, shop))["on_hand"] == 10
    # Settled once: by the payer's own notification, or (a slow outbox) by the mall's query,
    # whichever came first; every copy after it is a duplicate.
    settled = [await mall.api.metric(f'mall_refund_settlements_total{{how="{how}",'
                                     'outcome="applied"}') for how in ("notification", "query")]
    assert sum(settled) == 1, settled
    # Another notification of the same refund (a new id) changes nothing either.
    envelope = json.loads(bytes(body))
    again = await send(mall, signed(mall, json.dumps({**envelope, "id": "again"}).encode()))
    assert again.status == 204
    assert await mall.api.metric(
        'mall_refund_settlements_total{how="notification",outcome="duplicate"}') >= 5 + 1
    assert all(f.holds for f in await verify(mall.config.db_path))


async def test_a_refund_after_pickup_leaves_the_shelf_as_it_is(mall, shop):
    customer = await mall.api.login("after-pickup")
    order_id = await paid_order(mall, shop, customer)
    code = (await mall.api.get(f"/api/v1/orders/{order_id}", token=customer)).body
    picked = await mall.api.post(f"/api/v1/merchant/stores/{shop.store_id}/orders/{order_id}"
                                 "/pickup", token=shop.merchant, json={"code": code["pickup_code"]})
    assert picked.status == 200, picked.body
    asked = await ask(mall, customer, order_id, "quality")
    assert asked.status == 201 and asked.body["from_status"] == "completed"
    await decide(mall, shop, order_id)
    await order_status(mall, customer, order_id, ("refunded",))
    level = await stock(mall, shop)
    assert (level["on_hand"], level["reserved"]) == (9, 0)      # the goods left with her
    assert all(f.holds for f in await verify(mall.config.db_path))


async def test_a_rejected_refund_lets_the_order_go_on_or_ends_it(mall, shop):
    customer = await mall.api.login("rejected")
    waiting = await paid_order(mall, shop, customer)
    await ask(mall, customer, waiting)
    refused = await decide(mall, shop, waiting, "reject")
    assert refused.status == 400 and refused.error["field"] == "reject_reason"
    rejected = await decide(mall, shop, waiting, "reject", reject_reason="已出餐")
    assert rejected.status == 200 and rejected.body["status"] == "rejected"
    view = await order_status(mall, customer, waiting)
    assert view["status"] == "paid" and view["pickup_code"]      # still to be picked up
    again = await ask(mall, customer, waiting)
    assert again.status == 409 and again.error["code"] == "refund_exists"
    twice = await decide(mall, shop, waiting)
    assert twice.status == 409 and twice.error["code"] == "refund_decided"
    picked = await mall.api.post(f"/api/v1/merchant/stores/{shop.store_id}/orders/{waiting}"
                                 "/pickup", token=shop.merchant, json={"code": view["pickup_code"]})
    assert picked.status == 200
    done = await paid_order(mall, shop, customer)
    code = (await mall.api.get(f"/api/v1/orders/{done}", token=customer)).body["pickup_code"]
    await mall.api.post(f"/api/v1/merchant/stores/{shop.store_id}/orders/{done}/pickup",
                        token=shop.merchant, json={"code": code})
    await ask(mall, customer, done, "wrong_items")
    await decide(mall, shop, done, "reject", reject_reason="照片显示商品无误")
    assert (await order_status(mall, customer, done))["status"] == "refund_rejected"
    assert payer_rows(mall, "SELECT count(*) FROM refunds") == [(0,)]
    assert all(f.holds for f in await verify(mall.config.db_path))


async def test_refund_misuse_is_refused_naming_the_reason(mall, shop):
    customer, other = await mall.api.login("owner"), await mall.api.login("stranger")
    paid = await paid_order(mall, shop, customer)
    assert (await ask(mall, other, paid)).status == 404
    unpaid = (await mall.api.post("/api/v1/orders", token=customer,
                                  json=order_body(shop))).body["order_id"]
    not_yet = await ask(mall, customer, unpaid)
    assert not_yet.status == 409 and not_yet.error["code"] == "not_refundable"
    bad = await ask(mall, customer, paid, "because")
    assert bad.status == 400 and bad.error["field"] == "reason"
    assert (await mall.api.get(f"/api/v1/orders/{paid}/refund", token=customer)).status == 404
    elsewhere = await open_shop(mall, merchant_openid="merchant-2", name="别家店")
    await ask(mall, customer, paid)
    foreign = await mall.api.post(f"/api/v1/merchant/stores/{shop.store_id}/orders/{paid}"
                                  "/refund", token=elsewhere.merchant, json={"decision": "approve"})
    assert foreign.status == 403
    wrong_store = await mall.api.post(f"/api/v1/merchant/stores/{elsewhere.store_id}/orders/"
                                      f"{paid}/refund", token=elsewhere.merchant,
                                      json={"decision": "approve"})
    assert wrong_store.status == 404
    unknown = await mall.api.get(f"/api/v1/merchant/stores/{shop.store_id}/refunds",
                                 token=shop.merchant, params={"status": "lost"})
    assert unknown.status == 400 and unknown.error["field"] == "status"


@pytest.mark.slow  # seven simulated days
async def test_after_seven_days_goods_handed_over_are_not_refunded(start_mall):
    # 86,400x: a simulated day is a real second.
    mall = await start_mall(clock=Clock.parse("2026-11-27T12:00+08:00@86400"),
                            order_ttl_seconds=10 * 86400)
    shop = await open_shop(mall)
    customer = await mall.api.login("late-regret")
    order_id = await paid_order(mall, shop, customer)
    code = (await mall.api.get(f"/api/v1/orders/{order_id}", token=customer)).body
    await mall.api.post(f"/api/v1/merchant/stores/{shop.store_id}/orders/{order_id}/pickup",
                        token=shop.merchant, json={"code": code["pickup_code"]})
    await asyncio.sleep(7.5)
    late = await ask(mall, customer, order_id)
    assert late.status == 409 and late.error["code"] == "refund_window_passed"


async def test_an_approved_refund_the_payer_missed_is_sent_again_once(start_mall, start_payer,
                                                                      tmp_path):
    payer = await start_payer()
    mall = await start_mall(payer=payer)
    shop = await open_shop(mall)
    customer = await mall.api.login("patient")
    order_id = await paid_order(mall, shop, customer)
    await ask(mall, customer, order_id)
    port = payer.port
    await payer.close()                                 # the payer is down at approval
    approved = await decide(mall, shop, order_id)
    assert approved.status == 200 and approved.body["status"] == "approved"
    await asyncio.sleep(0.3)
    assert (await order_status(mall, customer, order_id))["status"] == "refund_requested"
    await start_payer(port=port, db_path=tmp_path / "payer0.db")   # back, same books
    view = await order_status(mall, customer, order_id, ("refunded",), seconds=5)
    assert view["status"] == "refunded"
    assert payer_rows(mall, "SELECT count(*) FROM refunds") == [(1,)]
    assert all(f.holds for f in await verify(mall.config.db_path))

