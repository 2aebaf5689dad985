"""The payer outside the mall: `xingcheng paysandbox` is a process of its own that keeps what
it owes in a durable outbox and retries on WeChat Pay's schedule, and the mall asks it about
payments it was never told of (主动查单).  Killing either process loses no payment."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from shared.wechatpay import Keyring

from .conftest import open_shop, order_body
from .test_cli import XINGCHENG, call, free_port, serving

CLOCK = ("--clock", "2026-11-27T21:00+08:00@60")   # WeChat's 15 s retry = 0.25 s here


def metric(base: str, name: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return 0.0


def wait_for(condition, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds}s")


def setup_order(base: str, operator: str) -> tuple[str, int, str]:
    """A store with stock and a customer's order with its prepay: (customer, order, prepay)."""
    status, store = call(f"{base}/api/v1/admin/stores", "POST", token=operator, body={
        "name": "坡子街口味虾", "kind": "snacks", "district": "天心区", "lat": 28.195,
        "lng": 112.976, "opens_at": "00:00", "closes_at": "24:00"})
    assert status == 201, store
    call(f"{base}/api/v1/admin/stores/{store['store_id']}/staff", "POST", token=operator,
         body={"openid": "merchant"})
    merchant = call(f"{base}/api/v1/auth/wx-login", "POST", {"code": "sandbox:merchant"})[1][
        "token"]
    _, product = call(f"{base}/api/v1/merchant/stores/{store['store_id']}/products", "POST",
                      token=merchant, body={"name": "口味虾", "price_fen": 1800})
    call(f"{base}/api/v1/merchant/stores/{store['store_id']}/inventory/{product['sku_id']}",
         "PUT", token=merchant, body={"stock": 10})
    customer = call(f"{base}/api/v1/auth/wx-login", "POST", {"code": "sandbox:eater"})[1][
        "token"]
    shop = type("Shop", (), {"store_id": store["store_id"], "sku_id": product["sku_id"]})
    status, order = call(f"{base}/api/v1/orders", "POST", token=customer,
                         body=order_body(shop))
    assert status == 201, order
    status, prepay = call(f"{base}/api/v1/orders/{order['order_id']}/pay", "POST",
                          token=customer)
    assert status == 201, prepay
    return customer, order["order_id"], prepay["prepay_id"]


def order_status(base: str, customer: str, order_id: int) -> str:
    return call(f"{base}/api/v1/orders/{order_id}", token=customer)[1]["status"]


def operator_token(db: Path) -> str:
    return subprocess.run([*XINGCHENG, "token", "--operator", "--db", str(db)],
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()


@pytest.mark.slow  # processes started, stopped or killed
def test_a_notification_owed_survives_a_killed_payer(tmp_path):
    keys, payer_db, payer_port = str(tmp_path / "keys.json"), tmp_path / "payer.db", free_port()
    payer_args, mall_port = ("--keys", keys, *CLOCK), free_port()
    with serving(payer_db, *payer_args, command="paysandbox", port=payer_port,
                 stop=signal.SIGKILL) as payer, \
            serving(tmp_path / "mall.db", *CLOCK, "--payer", payer, "--payer-keys", keys,
                    port=mall_port) as base:
        customer, order_id, prepay = setup_order(base, operator_token(tmp_path / "mall.db"))
        status, done = call(f"{payer}/sandbox/payments/{prepay}/complete", "POST",
                            {"result": "success", "delay_ms": 1500})
        assert status == 202, done
    # The payer is gone (SIGKILL) before the notification was due; the mall is stopped too.
    with serving(payer_db, *payer_args, command="paysandbox", port=payer_port) as payer, \
            serving(tmp_path / "mall.db", *CLOCK, "--payer", payer, "--payer-keys", keys,
                    port=mall_port) as base:
        wait_for(lambda: order_status(base, customer, order_id) == "paid")
        # The restarted payer delivers what its dead self owed (the mall may have asked for it
        # first with an order query: then the notification is a duplicate, never a second
        # payment).
        wait_for(lambda: metric(payer, 'paysandbox_notification_attempts_total'
                                       '{result="delivered"}') == 1)
        assert call(f"{payer}/readyz")[1]["outbox_pending"] == 0
        assert metric(base, 'mall_payment_notifications_total{result="applied"}') + metric(
            base, 'mall_payment_queries_total{result="applied"}') == 1
        assert metric(base, 'mall_orders_total{change="paid"}') == 1


@pytest.mark.slow  # processes started, stopped or killed
def test_a_mall_killed_before_its_notification_gets_it_on_a_retry(tmp_path):
    keys, mall_db, mall_port = str(tmp_path / "keys.json"), tmp_path / "mall.db", free_port()
    with serving(tmp_path / "payer.db", "--keys", keys, *CLOCK, command="paysandbox") as payer:
        mall_args = (*CLOCK, "--payer", payer, "--payer-keys", keys)
        with serving(mall_db, *mall_args, port=mall_port, stop=signal.SIGKILL) as base:
            customer, order_id, prepay = setup_order(base, operator_token(mall_db))
        status, _ = call(f"{payer}/sandbox/payments/{prepay}/complete", "POST",
                         {"result": "success"})
        assert status == 202
        wait_for(lambda: metric(payer, 'paysandbox_notification_attempts_total'
                                       '{result="failed"}') >= 1)
        with serving(mall_db, *mall_args, port=mall_port) as base:
            wait_for(lambda: order_status(base, customer, order_id) == "paid")
            applied = metric(base, 'mall_payment_notifications_total{result="applied"}')
            queried = metric(base, 'mall_payment_queries_total{result="applied"}')
            assert applied + queried == 1   # exactly once, by whichever came first
        assert metric(payer, 'paysandbox_notification_attempts_total{result="delivered"}') + \
            queried >= 1


async def test_the_mall_asks_the_payer_about_payments_it_never_heard_of(start_mall):
    """Notifications lost on the way (a wrong notify_url): the order query settles the
    payment, once, after `payment_query_after_seconds`."""
    mall = await start_mall(notify_url="http://127.0.0.1:9/api/v1/payments/notify",
                            payment_query_after_seconds=0.3)
    shop = await open_shop(mall)
    customer = await mall.api.login("eater")
    order = await mall.api.post("/api/v1/orders", token=customer, json=order_body(shop))
    pay = await mall.api.post(f"/api/v1/orders/{order.body['order_id']}/pay", token=customer)
    done = await mall.payer.post(f"/sandbox/payments/{pay.body['prepay_id']}/complete",
                                 json={"result": "success"})
    assert done.status == 202
    for _ in range(100):
        view = await mall.api.get(f"/api/v1/orders/{order.body['order_id']}", token=customer)
        if view.body["status"] == "paid":
            break
        await asyncio.sleep(0.05)
    assert view.body["status"] == "paid" and len(view.body["pickup_code"]) == 6
    await asyncio.sleep(0.5)   # more sweeps: nothing is applied twice
    assert await mall.api.metric('mall_payment_queries_total{result="applied"}') == 1
    assert await mall.api.metric('mall_orders_total{change="paid"}') == 1
    assert await mall.api.metric("mall_payment_notifications_total") == 0


async def test_paying_while_the_payer_is_down_is_a_503_and_writes_nothing(start_mall):
    mall = await start_mall(payer_url="http://127.0.0.1:9")
    shop = await open_shop(mall)
    customer = await mall.api.login("eater")
    order = await mall.api.post("/api/v1/orders", token=customer, json=order_body(shop))
    pay = await mall.api.post(f"/api/v1/orders/{order.body['order_id']}/pay", token=customer)
    assert pay.status == 503 and pay.error["code"] == "payer_unavailable", pay.body
    rows = await mall.services.db.reader().execute_fetchall("SELECT count(*) FROM payments")
    assert rows[0][0] == 0
    view = await mall.api.get(f"/api/v1/orders/{order.body['order_id']}", token=customer)
    assert view.body["status"] == "pending_payment"


async def test_the_payer_takes_only_the_merchants_signed_requests(mall):
    keys = Keyring.load_or_create(mall.config.payer_keys)
    signer = keys.merchant_signer()
    path = "/v3/pay/transactions/jsapi"
    order = {"appid": keys.appid, "mchid": keys.mchid, "description": "星城订单 1",
             "out_trade_no": "XC0000000001ABCDEF", "notify_url": "http://127.0.0.1:9/n",
             "amount": {"total": 1800, "currency": "CNY"}, "payer": {"openid": "eater"}}
    body = json.dumps(order).encode()

    async def jsapi(payload: bytes, signed_body: bytes | None = None):
        auth = signer.authorization("POST", path, signed_body or payload, int(time.time()))
        return await mall.payer.post(path, data=payload, headers={
            "Authorization": auth, "Content-Type": "application/json"})

    unsigned = await mall.payer.post(path, json=order)
    assert unsigned.status == 401 and unsigned.body["code"] == "SIGN_ERROR"
    tampered = await jsapi(body.replace(b"1800", b"1"), signed_body=body)
    assert tampered.status == 401 and tampered.body["code"] == "SIGN_ERROR"
    first, again = await jsapi(body), await jsapi(body)
    assert first.status == again.status == 200
    assert first.body["prepay_id"] == again.body["prepay_id"]
    cheaper = await jsapi(json.dumps({**order, "amount": {"total": 1}}).encode())
    assert cheaper.status == 400 and cheaper.body["code"] == "INVALID_REQUEST"
    bad = await jsapi(json.dumps({**order, "out_trade_no": "x"}).encode())
    assert bad.status == 400 and bad.body["field"] == "out_trade_no"

    async def signed(method: str, url: str, payload: bytes = b""):
        auth = signer.authorization(method, url, payload, int(time.time()))
        return await mall.payer.call(method, url, data=payload or None,
                                     headers={"Authorization": auth})

    query = f"/v3/pay/transactions/out-trade-no/{order['out_trade_no']}?mchid={keys.mchid}"
    assert (await signed("GET", query)).body["trade_state"] == "NOTPAY"
    paid = await mall.payer.post(f"/sandbox/payments/{first.body['prepay_id']}/complete",
                                 json={"result": "success"})
    assert paid.status == 202
    after = (await signed("GET", query)).body
    assert after["trade_state"] == "SUCCESS" and after["amount"]["payer_total"] == 1800
    close = f"/v3/pay/transactions/out-trade-no/{order['out_trade_no']}/close"
    refused = await signed("POST", close, json.dumps({"mchid": keys.mchid}).encode())
    assert refused.status == 400 and refused.body["code"] == "ORDERPAID"
