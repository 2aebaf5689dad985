"""Load shedding: a mall whose requests have waited longer than the target for a whole
interval refuses the excess at once with 503 and Retry-After, keeps the latency of what it
admits bounded, writes nothing of what it refuses, never sheds its operations endpoints,
recovers by itself when the burst is over, and sheds nothing while it keeps up."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from mall.config import MallConfig
from mall.faults import FaultProfile
from mall.metrics import MallMetrics
from mall.shedding import LoadShedder

from .conftest import open_shop, order_body

# Every catalogue page and order costs 20 ms of the event loop's time (a build whose code is
# that much heavier): the mall serves 50 a second, and a burst of 120 at once (within the
# listening socket's backlog of 128) would make the last wait 2.4 s.
HEAVY = FaultProfile.model_validate({"name": "heavy", "latency": [
    {"route": "GET /api/v1/stores/{store_id}/products", "fixed_ms": 20, "spin": True},
    {"route": "POST /api/v1/orders", "fixed_ms": 20, "spin": True}]})
SHED = 'mall_shed_requests_total{reason="queue_delay"}'
DEFAULT = MallConfig().shed_target_seconds   # as the mall ships


async def timed(call) -> tuple[object, float]:
    started = time.perf_counter()
    reply = await call
    return reply, time.perf_counter() - started


async def burst(mall, path: str, n: int) -> tuple[list[float], list, object, float]:
    """`n` requests at once and a readiness probe among them: (admitted seconds, shed
    replies, the probe's reply, its seconds)."""
    requests = [timed(mall.api.get(path)) for _ in range(n)]
    ready = asyncio.ensure_future(timed(mall.api.get("/readyz")))
    replies = await asyncio.gather(*requests)
    ready_reply, ready_s = await ready
    admitted = [s for r, s in replies if r.status == 200]
    shed = [r for r, _ in replies if r.status == 503]
    assert len(admitted) + len(shed) == n
    return admitted, shed, ready_reply, ready_s


async def test_a_standing_queue_is_shed_and_what_is_admitted_stays_fast(start_mall):
    mall = await start_mall(faults=HEAVY, shed_target_seconds=DEFAULT)
    shop = await open_shop(mall, stock=1000)
    catalogue = f"/api/v1/stores/{shop.store_id}/products"
    admitted, shed, ready_reply, ready_s = await burst(mall, catalogue, 120)
    # The queue stood above 10 ms for 200 ms after some eleven pages: the rest are turned away.
    assert len(shed) > 70 and len(admitted) >= 3
    assert all(r.headers["Retry-After"] == "1" and r.error["code"] == "overloaded"
               for r in shed)
    # Admitted: the interval and their own 20 ms, plus the loop's work on the burst; without
    # shedding the last would wait 2.4 s.
    assert max(admitted) < 1.0, sorted(admitted)[-5:]
    assert ready_reply.status == 200 and ready_s < 1.0   # operations are never shed
    assert await mall.api.metric(SHED) == len(shed)
    # The burst is over: the mall serves again at once, with nothing left in flight.
    after = [await mall.api.get(catalogue) for _ in range(4)]
    assert [r.status for r in after] == [200] * 4
    assert await mall.api.metric("mall_requests_in_flight") == 0


@pytest.mark.several_seconds
async def test_without_shedding_everyone_waits(start_mall):
    # (nor does a PostgreSQL pool's wait refuse anyone: that limit is tested on its own)
    mall = await start_mall(faults=HEAVY, shed_target_seconds=None, pool_timeout_seconds=60)
    shop = await open_shop(mall, stock=1000)
    admitted, shed, _, _ = await burst(mall, f"/api/v1/stores/{shop.store_id}/products", 120)
    assert not shed and max(admitted) > 2.0


async def test_a_shed_order_writes_nothing(start_mall):
    mall = await start_mall(faults=HEAVY, shed_target_seconds=DEFAULT)
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


async def test_a_mall_that_keeps_up_sheds_nothing(start_mall):
    mall = await start_mall(shed_target_seconds=DEFAULT)
    shop = await open_shop(mall, stock=1000)
    catalogue = f"/api/v1/stores/{shop.store_id}/products"
    for _ in range(10):   # a busy but steady crowd: 20 at a time, 200 in all
        replies = await asyncio.gather(*(mall.api.get(catalogue) for _ in range(20)))
        assert {r.status for r in replies} == {200}
    assert await mall.api.metric(SHED) == 0
    assert 0 <= await mall.api.metric("mall_queue_delay_seconds") < 0.005


async def test_only_a_busy_loop_counts_as_a_queue():
    # The loop held 300 ms twice: once working (a queue of its own: shed), once with its
    # thread idle, as when another process takes the CPU (refusing would free nothing).
    shedder = LoadShedder(0.005, 0.1, MallMetrics())
    shedder.start()
    try:
        await asyncio.sleep(0.02)
        time.sleep(0.3)            # the thread holds the loop but spends no CPU
        assert not shedder.overloaded()
        await asyncio.sleep(0.02)  # on-time probes again
        deadline = time.perf_counter() + 0.3
        while time.perf_counter() < deadline:
            pass                   # the loop's own work
        assert shedder.overloaded()
        await asyncio.sleep(0.02)  # the first on-time probe ends it
        assert not shedder.overloaded()
    finally:
        shedder.stop()


class _SlowToCollect:
    """Garbage in a cycle whose finaliser takes 300 ms: a collection the loop cannot skip."""

    def __init__(self) -> None:
        self.cycle = self

    def __del__(self) -> None:
        deadline = time.perf_counter() + 0.3
        while time.perf_counter() < deadline:
            pass


async def test_the_collectors_pause_is_not_a_queue():
    # A full collection of the full tier's heap held the loop longer than an interval; what
    # arrived meanwhile is served at once after it, and refusing it would free nothing.
    shedder = LoadShedder(0.005, 0.1, MallMetrics())
    shedder.start()
    try:
        await asyncio.sleep(0.02)
        _SlowToCollect()
        started = time.perf_counter()
        gc.collect()
        assert time.perf_counter() - started >= 0.3   # the loop was held, by the collector
        assert not shedder.overloaded()
        # The same hold as the loop's own work is still a queue.
        await asyncio.sleep(0.02)
        deadline = time.perf_counter() + 0.3
        while time.perf_counter() < deadline:
            pass
        assert shedder.overloaded()
    finally:
        shedder.stop()
    assert shedder._collector not in gc.callbacks
