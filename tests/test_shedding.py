"""Load shedding: a mall pushed past what it can handle refuses the excess at once with 503 and
Retry-After, keeps the latency of what it admits bounded, writes nothing of what it refuses,
never sheds its operations endpoints, and recovers by itself when the burst is over."""

from __future__ import annotations

import asyncio
import time

from mall.faults import FaultProfile

from .conftest import open_shop, order_body

# Every catalogue page and order takes 100 ms in the handler (a slow build, or a slow disk):
# 4 slots serve 40 a second, and a burst of 120 at once would make the last wait 3 s.
SLOW = FaultProfile.model_validate({"name": "slow", "latency": [
    {"route": "GET /api/v1/stores/{store_id}/products", "fixed_ms": 100},
    {"route": "POST /api/v1/orders", "fixed_ms": 100}]})
LIMITS = {"max_in_flight": 4, "max_waiting": 8, "max_wait_seconds": 0.2}


async def timed(call) -> tuple[object, float]:
    started = time.perf_counter()
    reply = await call
    return reply, time.perf_counter() - started


async def test_a_burst_is_shed_early_and_what_is_admitted_stays_fast(start_mall):
    mall = await start_mall(faults=SLOW, **LIMITS)
    shop = await open_shop(mall, stock=1000)
    catalogue = f"/api/v1/stores/{shop.store_id}/products"
    burst = [timed(mall.api.get(catalogue)) for _ in range(120)]
    ready = asyncio.ensure_future(timed(mall.api.get("/readyz")))
    replies = await asyncio.gather(*burst)
    ready_reply, ready_s = await ready
    admitted = [s for r, s in replies if r.status == 200]
    shed = [r for r, _ in replies if r.status == 503]
    assert len(admitted) + len(shed) == 120
    # The first 4 run at once; on a quiet machine the next 4 get the slots they free 100 ms
    # later, within the 200 ms wait (on a busy one the first take longer and those time out);
    # the rest would have waited longer and are turned away.
    assert len(shed) > 60 and len(admitted) >= LIMITS["max_in_flight"]
    assert all(r.headers["Retry-After"] == "1" and r.error["code"] == "overloaded"
               for r in shed)
    # Admitted: at most the wait bound (0.2 s) and the handler's 100 ms, plus the loop's
    # own work on a 120-request burst; without shedding the last would wait 3 s.
    assert max(admitted) < 1.0, sorted(admitted)[-5:]
    assert ready_reply.status == 200 and ready_s < 0.5   # operations are never shed
    assert sum([await mall.api.metric(f'mall_shed_requests_total{{reason="{reason}"}}')
                for reason in ("line_full", "waited_too_long")]) == len(shed)
    # The burst is over: the mall serves again at once, with nothing left in flight.
    after = await asyncio.gather(*(mall.api.get(catalogue) for _ in range(4)))
    assert [r.status for r in after] == [200] * 4
    assert await mall.api.metric("mall_requests_in_flight") == 0


async def test_a_shed_order_writes_nothing(start_mall):
    mall = await start_mall(faults=SLOW, **LIMITS)
    shop = await open_shop(mall, stock=1000)
    customers = [await mall.api.login(f"buyer-{n}") for n in range(60)]
    replies = await asyncio.gather(*(
        mall.api.post("/api/v1/orders", token=token, json=order_body(shop, qty=2))
        for token in customers))
    created = [r for r in replies if r.status == 201]
    shed = [r for r in replies if r.status == 503]
    assert len(created) + len(shed) == 60 and shed and created
    conn = mall.services.db.reader()
    orders = (await conn.execute_fetchall("SELECT count(*) FROM orders"))[0][0]
    reserved = (await conn.execute_fetchall(
        "SELECT reserved FROM inventory WHERE sku_id = ?", (shop.sku_id,)))[0][0]
    assert orders == len(created)
    assert reserved == 2 * len(created)
