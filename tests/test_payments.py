"""Paying through the payment sandbox: signed notifications, applied exactly once."""

from __future__ import annotations

import asyncio
import json
import time

from shared import wechatpay

from .conftest import order_body, paid_order

NOTIFY = "/api/v1/payments/notify"


async def prepared_notification(mall, shop, customer: str, result: str = "success",
                                delay_ms: int = 60_000) -> tuple[int, dict]:
    """An order and the signed notification the sandbox payer sends for it (delivery is
    delayed so the test controls every arrival)."""
    order = await mall.api.post("/api/v1/orders", token=customer, json=order_body(shop))
    return order.body["order_id"], await held_notification(
        mall, customer, order.body["order_id"], result, delay_ms)


async def held_notification(mall, customer: str, order_id: int, result: str = "success",
                            delay_ms: int = 60_000) -> dict:
    """The signed notification of paying this order, held back by the payer for the test
    to deliver."""
    pay = await mall.api.post(f"/api/v1/orders/{order_id}/pay", token=customer)
    done = await mall.payer.post(f"/sandbox/payments/{pay.body['prepay_id']}/complete",
                                 json={"result": result, "delay_ms": delay_ms})
    assert done.status == 202, done.body
    return done.body["notification"]


def keyring(mall) -> wechatpay.Keyring:
    return wechatpay.Keyring.load_or_create(mall.config.payer_keys)


def renotified(mall, note: dict, age_s: int = 0, **transaction) -> dict:
    """Another notification for the same payment, signed as the payer signs (its platform
    key): a different id, the transaction changed by `transaction`, sent `age_s` ago."""
    keys = keyring(mall)
    envelope = json.loads(note["body"])
    resource = wechatpay.decrypt_resource(keys.apiv3_key.encode(), envelope["resource"])
    envelope["id"] = f"{envelope['id']}-again"
    envelope["resource"] = wechatpay.encrypt_resource(
        keys.apiv3_key.encode(), resource | transaction, "n0nce0n0nce0", "transaction")
    body = json.dumps(envelope, ensure_ascii=False).encode()
    return {"url": note["url"], "body": body.decode(),
            "headers": keys.platform_signer().headers(body, int(time.time()) - age_s)}


async def send(mall, notification: dict, headers: dict | None = None, body: str | None = None):
    return await mall.api.post(NOTIFY, data=(body or notification["body"]).encode(),
                               headers=headers or notification["headers"])


async def test_sandbox_payment_marks_the_order_paid_with_a_pickup_code(mall, shop):
    customer = await mall.api.login("payer")
    order_id = await paid_order(mall, shop, customer)
    view = await mall.api.get(f"/api/v1/orders/{order_id}", token=customer)
    assert view.body["status"] == "paid" and len(view.body["pickup_code"]) == 6
    assert await mall.api.metric('mall_payment_notifications_total{result="applied"}') == 1
    assert await mall.api.metric("mall_gmv_yuan_total") == shop.price_fen / 100
    merchant_view = await mall.api.get(
        f"/api/v1/merchant/stores/{shop.store_id}/orders/{order_id}", token=shop.merchant)
    assert "pickup_code" not in merchant_view.body


async def test_a_notification_repeated_5_times_is_applied_once(mall, shop):
    customer = await mall.api.login("payer")
    order_id, note = await prepared_notification(mall, shop, customer)
    replies = [await send(mall, note) for _ in range(5)]
    assert [r.status for r in replies] == [204] * 5
    assert await mall.api.metric('mall_payment_notifications_total{result="applied"}') == 1
    assert await mall.api.metric('mall_payment_notifications_total{result="duplicate"}') == 4
    assert await mall.api.metric('mall_orders_total{change="paid"}') == 1
    assert await mall.api.metric("mall_gmv_yuan_total") == shop.price_fen / 100
    # Concurrent repeats too.
    replies = await asyncio.gather(*(send(mall, note) for _ in range(5)))
    assert {r.status for r in replies} == {204}
    assert await mall.api.metric('mall_orders_total{change="paid"}') == 1
    view = await mall.api.get(f"/api/v1/orders/{order_id}", token=customer)
    assert view.body["status"] == "paid"


async def test_a_late_failure_does_not_undo_a_success(mall, shop):
    """Reordered: a failure notification for the same prepay arrives after the success."""
    api = mall.api
    customer = await api.login("payer")
    order = await api.post("/api/v1/orders", token=customer, json=order_body(shop))
    order_id = order.body["order_id"]
    prepay = (await api.post(f"/api/v1/orders/{order_id}/pay", token=customer)).body
    ok = (await mall.payer.post(f"/sandbox/payments/{prepay['prepay_id']}/complete",
                                json={"result": "success", "delay_ms": 60_000})
          ).body["notification"]
    fail = renotified(mall, ok, trade_state="PAYERROR", transaction_id=None)
    assert (await send(mall, ok)).status == 204
    assert (await send(mall, fail)).status == 204
    view = await api.get(f"/api/v1/orders/{order_id}", token=customer)
    assert view.body["status"] == "paid"
    assert await api.metric('mall_payment_notifications_total{result="payment_failed"}') == 0


async def test_a_failed_payment_leaves_the_order_payable(mall, shop):
    api = mall.api
    customer = await api.login("payer")
    order_id, note = await prepared_notification(mall, shop, customer, result="fail")
    assert (await send(mall, note)).status == 204
    assert (await api.get(f"/api/v1/orders/{order_id}", token=customer)).body["status"] == \
        "pending_payment"
    again = await api.post(f"/api/v1/orders/{order_id}/pay", token=customer)
    assert again.status == 201
    assert json.loads(note["body"])["id"] != again.body["prepay_id"]


async def test_forged_notifications_are_rejected(mall, shop):
    customer = await mall.api.login("payer")
    order_id, note = await prepared_notification(mall, shop, customer)
    envelope = json.loads(note["body"])
    envelope["summary"] = "tampered"
    forged_body = json.dumps(envelope, ensure_ascii=False)
    cases = [
        (note["headers"], forged_body, "bad_signature"),
        (note["headers"] | {wechatpay.SIGNATURE: "QUJD" * 86 + "QQ=="}, None, "bad_signature"),
        (note["headers"] | {wechatpay.SERIAL: "0" * 40}, None, "bad_signature"),
        ({k: v for k, v in note["headers"].items() if k != wechatpay.NONCE}, None,
         "missing_signature"),
    ]
    for headers, body, code in cases:
        reply = await send(mall, note, headers=headers, body=body)
        assert reply.status == 401, reply.body
        assert reply.body["code"] == "FAIL" and reply.error["code"] == code
    # A notification signed by another key (a different sandbox) is forged too.
    other = wechatpay.PlatformSigner(wechatpay.new_private_key_pem(),
                                     note["headers"][wechatpay.SERIAL])
    stamp, nonce = str(int(time.time())), "n0nce"
    headers = {wechatpay.SIGNATURE: other.sign(stamp, nonce, note["body"].encode()),
               wechatpay.TIMESTAMP: stamp, wechatpay.NONCE: nonce,
               wechatpay.SERIAL: other.serial}
    reply = await send(mall, note, headers=headers)
    assert reply.status == 401 and reply.error["code"] == "bad_signature"
    view = await mall.api.get(f"/api/v1/orders/{order_id}", token=customer)
    assert view.body["status"] == "pending_payment"
    assert await mall.api.metric('mall_payment_notifications_total{result="rejected"}') == 5


async def test_stale_notifications_are_rejected(mall, shop):
    """A correctly signed notification older than the window is refused: replay protection."""
    customer = await mall.api.login("payer")
    order_id, note = await prepared_notification(mall, shop, customer)
    for age in (301, 3600, -400):
        stale = renotified(mall, note, age_s=age)
        reply = await send(mall, stale)
        assert reply.status == 401 and reply.error["code"] == "stale_notification", reply.body
    assert await mall.api.metric('mall_payment_notifications_total{result="stale"}') == 3
    assert (await mall.api.get(f"/api/v1/orders/{order_id}", token=customer)).body[
        "status"] == "pending_payment"


async def test_payment_access_and_states(mall, shop):
    api = mall.api
    customer, stranger = await api.login("payer"), await api.login("stranger")
    order = await api.post("/api/v1/orders", token=customer, json=order_body(shop))
    order_id = order.body["order_id"]
    assert (await api.post(f"/api/v1/orders/{order_id}/pay", token=stranger)).status == 404
    first = await api.post(f"/api/v1/orders/{order_id}/pay", token=customer)
    second = await api.post(f"/api/v1/orders/{order_id}/pay", token=customer)
    assert first.body["prepay_id"] == second.body["prepay_id"]
    complete = f"/sandbox/payments/{first.body['prepay_id']}/complete"
    assert (await mall.payer.post("/sandbox/payments/wxnope/complete",
                                  json={"result": "success"})).status == 404
    cancelled = await api.post(f"/api/v1/orders/{order_id}/cancel", token=customer)
    assert cancelled.body["status"] == "cancelled"
    again = await api.post(f"/api/v1/orders/{order_id}/pay", token=customer)
    assert again.status == 409 and again.error["code"] == "not_payable"
    # The mall closes the cancelled order's payment at the payer too (its sweep): the
    # customer's wallet can no longer pay it.
    for _ in range(100):
        rows = await mall.services.db.reader().execute_fetchall(
            "SELECT payer_closed_at FROM payments WHERE order_id = ?", (order_id,))
        if rows[0][0] is not None:
            break
        await asyncio.sleep(0.02)
    closed = await mall.payer.post(complete, json={"result": "success"})
    assert closed.status == 409 and closed.body["code"] == "ORDER_NOT_PAYABLE", closed.body
    assert await api.metric('mall_payment_notifications_total{result="late"}') == 0
