"""The gray router in front of two malls on one database: real apps on real sockets."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gray.router import RouterConfig, create_app
from gray.rules import Rules
from mall.verification import verify

from .api import Api
from .conftest import open_shop, order_body, wait_until_paid
from .test_cli import free_port

ADMIN = "router-admin-secret"


@pytest.fixture(params=[pytest.param("haproxy", marks=pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="Debian's haproxy is not installed")), "python"])
async def gray(request, tmp_path, start_mall):
    """A baseline and a canary mall on one database, and a router in front of them: HAProxy
    carrying the requests (the default), or the router's own Python proxy."""
    baseline = await start_mall(db_path=tmp_path / "shared.db")
    canary = await start_mall(db_path=tmp_path / "shared.db")
    stops: list = []

    async def start(rules: Rules | None = None, canary_url: str | None = None) -> Api:
        config = RouterConfig(baseline=str(baseline.server.make_url("")).rstrip("/"),
                              canary=(canary_url or str(canary.server.make_url(""))).rstrip("/"),
                              admin_token=ADMIN, audit_path=tmp_path / "router-audit.jsonl",
                              rules=rules or Rules(), engine=request.param)
        if request.param == "python":
            server = TestServer(create_app(config), host="127.0.0.1")
            await server.start_server()
            stops.append(server.close)
            return Api(str(server.make_url("")), baseline.api.session)
        # A socket's path must be short: a folder of its own, not pytest's long one.
        config.workdir = Path(tempfile.mkdtemp(prefix="gray-"))
        config.listen = ("127.0.0.1", free_port())
        runner = web.AppRunner(create_app(config))
        await runner.setup()
        await web.UnixSite(runner, str(config.admin_socket)).start()
        stops.append(runner.cleanup)
        stops.append(lambda: asyncio.to_thread(shutil.rmtree, config.workdir, True))
        return Api(f"http://{config.listen[0]}:{config.listen[1]}", baseline.api.session)

    yield baseline, canary, start
    for stop in stops:
        await stop()


def forged_token(user_id: int) -> str:
    """A token with a user's claims and no valid signature: routed, then refused (401)."""
    claims = json.dumps({"uid": user_id, "role": "customer", "exp": 2**40}).encode()
    return base64.urlsafe_b64encode(claims).rstrip(b"=").decode() + ".unsigned"


async def test_requests_follow_their_store_and_the_customer_follows_hers(gray):
    baseline, _canary, start = gray
    listed = await open_shop(baseline, name="岳麓山下粉店", merchant_openid="m-listed")
    other = await open_shop(baseline, name="坡子街口味虾", merchant_openid="m-other")
    router = await start(Rules(stores=frozenset({listed.store_id})))
    customer = await router.login("walker")

    page = await router.get(f"/api/v1/stores/{listed.store_id}/products")
    assert page.status == 200 and page.headers["X-Gray-Side"] == "canary"
    page = await router.get(f"/api/v1/stores/{other.store_id}/products")
    assert page.headers["X-Gray-Side"] == "baseline"
    merchant = await router.get(
        f"/api/v1/merchant/stores/{listed.store_id}/pickup-queue", token=listed.merchant)
    assert merchant.status == 200 and merchant.headers["X-Gray-Side"] == "canary"

    # Ordering at the listed store, then paying (a path with no store in it): both canary.
    order = await router.post("/api/v1/orders", token=customer, json=order_body(listed))
    assert order.status == 201 and order.headers["X-Gray-Side"] == "canary", order.body
    pay = await router.post(f"/api/v1/orders/{order.body['order_id']}/pay", token=customer)
    assert pay.status == 201 and pay.headers["X-Gray-Side"] == "canary", pay.body
    mine = await router.get("/api/v1/orders", token=customer)
    assert mine.headers["X-Gray-Side"] == "canary"
    # A tester's header names the side outright.
    tried = await router.get(f"/api/v1/stores/{other.store_id}/products",
                             headers={"X-Gray-Side": "canary"})
    assert tried.headers["X-Gray-Side"] == "canary"


async def test_a_district_sends_its_stores_to_the_canary(gray):
    baseline, _canary, start = gray
    inside = await open_shop(baseline, district="岳麓区", merchant_openid="m-in")
    outside = await open_shop(baseline, district="天心区", merchant_openid="m-out")
    router = await start(Rules(districts=frozenset({"岳麓区"})))
    assert (await router.get(f"/api/v1/stores/{inside.store_id}")).headers[
        "X-Gray-Side"] == "canary"
    assert (await router.get(f"/api/v1/stores/{outside.store_id}")).headers[
        "X-Gray-Side"] == "baseline"
    rules = await router.get("/router/rules", token=ADMIN)
    assert rules.body["canary_stores"] == [inside.store_id]


@pytest.mark.slow  # a router process per engine, thousands of customers
async def test_a_share_of_customers_holds_within_two_points_and_sticks(gray):
    _baseline, _canary, start = gray
    router = await start(Rules(share=0.25))
    limit = asyncio.Semaphore(64)

    async def side_of(user_id: int) -> str:
        async with limit:
            reply = await router.get("/api/v1/me/addresses", token=forged_token(user_id))
        assert reply.status == 401, reply.body  # the mall refuses it; the router routed it
        return reply.headers["X-Gray-Side"]

    first = await asyncio.gather(*(side_of(n) for n in range(1, 10_001)))
    share = Counter(first)["canary"] / len(first)
    assert abs(share - 0.25) <= 0.02, share
    again = await asyncio.gather(*(side_of(n) for n in range(1, 501)))
    assert again == first[:500]
    # Widening the share keeps every canary customer on the canary.
    changed = await router.put("/router/rules", token=ADMIN,
                               json={"rules": {"share": 0.5}, "note": "step 50%"})
    assert changed.status == 200, changed.body
    wider = await asyncio.gather(*(side_of(n) for n in range(1, 501)))
    assert all(w == "canary" for f, w in zip(first[:500], wider, strict=True) if f == "canary")
    assert Counter(wider)["canary"] > Counter(first[:500])["canary"]


async def test_rules_change_only_with_the_admin_token_and_every_change_is_audited(
        gray, tmp_path):
    _baseline, _canary, start = gray
    router = await start()
    refused = await router.put("/router/rules", json={"rules": {"share": 1.0}})
    assert refused.status == 401 and refused.error["field"] == "Authorization"
    bad = await router.put("/router/rules", token=ADMIN, json={"rules": {"share": 1.5}})
    assert bad.status == 422 and bad.error["field"] == "rules.share", bad.body
    unknown = await router.put("/router/rules", token=ADMIN,
                               json={"rules": {"districts": ["火星区"]}})
    assert unknown.status == 422 and unknown.error["field"] == "rules.districts"
    done = await router.put("/router/rules", token=ADMIN, headers={"X-Operator": "li.na"},
                            json={"rules": {"share": 1.0}, "note": "promote"})
    assert done.status == 200, done.body
    assert (await router.get("/api/v1/openapi.json")).headers["X-Gray-Side"] == "canary"
    audit = await router.get("/router/audit", token=ADMIN)
    last = audit.body["items"][-1]
    assert (last["actor"], last["note"], last["from"]["share"], last["to"]["share"]) == (
        "li.na", "promote", 0.0, 1.0)
    assert len(audit.body["items"]) == 2  # the rules it started with, and this change
    # HAProxy's log reaches the metrics a moment after the answer reaches the client.
    for _ in range(40):
        async with router.session.get(router.base_url + "/router/metrics") as resp:
            metrics = await resp.text()
        if 'gray_router_requests_total{outcome="2xx",side="canary"} 1.0' in metrics:
            break
        await asyncio.sleep(0.05)
    assert 'gray_router_requests_total{outcome="2xx",side="canary"} 1.0' in metrics


async def test_backend_answers_pass_unchanged_and_a_dead_backend_is_a_502(gray):
    baseline, _canary, start = gray
    shop = await open_shop(baseline)
    router = await start(Rules(stores=frozenset({shop.store_id})))
    customer = await router.login("late-bird")
    direct = await baseline.api.post("/api/v1/orders", token=customer,
                                     json=order_body(shop, qty=99))
    routed = await router.post("/api/v1/orders", token=customer, json=order_body(shop, qty=99))
    assert (routed.status, routed.body) == (direct.status, direct.body)
    assert routed.status == 409 and routed.headers["X-Gray-Side"] == "canary"
    missing = await router.get("/api/v1/stores/999999/products")
    assert missing.status == 404 and missing.error["field"] == "store_id"

    dead = await start(Rules(share=1.0), canary_url="http://127.0.0.1:9")
    down = await dead.get("/api/v1/openapi.json")
    assert down.status == 502 and down.error["code"] == "upstream_unreachable"
    assert down.headers["X-Gray-Side"] == "canary"


async def test_the_router_passes_bodies_and_headers_both_ways(gray):
    baseline, _canary, start = gray
    router = await start()
    async with aiohttp.ClientSession() as session:
        async with session.get(router.base_url + "/api/v1/openapi.json",
                               headers={"Accept-Encoding": "gzip"}) as resp:
            routed = await resp.read()
        async with session.get(str(baseline.server.make_url("/api/v1/openapi.json")),
                               headers={"Accept-Encoding": "gzip"}) as resp:
            direct = await resp.read()
    assert routed == direct


async def test_switching_sides_mid_journey_loses_nothing(gray):
    """A customer orders on the canary, the rules move everything to the baseline (a
    rollback), and she pays there: one order, paid once, stock accounted for."""
    baseline, _canary, start = gray
    shop = await open_shop(baseline, stock=5)
    router = await start(Rules(stores=frozenset({shop.store_id})))
    customer = await router.login("mid-journey")
    order = await router.post("/api/v1/orders", token=customer, json=order_body(shop, 2),
                              headers={"Idempotency-Key": "one-tap"})
    assert order.status == 201 and order.headers["X-Gray-Side"] == "canary"
    rolled = await router.put("/router/rules", token=ADMIN,
                              json={"rules": {}, "note": "rollback"})
    assert rolled.status == 200, rolled.body
    again = await router.post("/api/v1/orders", token=customer, json=order_body(shop, 2),
                              headers={"Idempotency-Key": "one-tap"})   # the retried tap
    assert again.headers["X-Gray-Side"] == "baseline"
    assert again.body["order_id"] == order.body["order_id"]
    pay = await router.post(f"/api/v1/orders/{order.body['order_id']}/pay", token=customer)
    assert pay.status == 201 and pay.headers["X-Gray-Side"] == "baseline", pay.body
    done = await baseline.payer.post(f"/sandbox/payments/{pay.body['prepay_id']}/complete",
                                     json={"result": "success"})
    assert done.status == 202, done.body
    await wait_until_paid(router, customer, order.body["order_id"])
    stock = await baseline.api.get(
        f"/api/v1/merchant/stores/{shop.store_id}/inventory/{shop.sku_id}", token=shop.merchant)
    assert (stock.body["on_hand"], stock.body["reserved"]) == (5, 2)
    breaches = [f for f in await verify(baseline.config.db_path) if not f.holds]
    assert not breaches, breaches
