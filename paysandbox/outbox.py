"""Delivering notifications: every one owed waits in the outbox table until a mall answers
it with 2xx, retried on WeChat Pay's schedule (read on the simulated clock, so a fast
simulation retries fast).  The table, not memory, is the queue: a sandbox killed and started
again goes on with what it owed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.clock import Clock
from shared.wechatpay import PlatformSigner

from . import storage
from .storage import Store

log = logging.getLogger("paysandbox.outbox")

# Seconds between WeChat Pay's notification retries after the first attempt (about 24 hours
# in all: 15s/15s/30s/3m/10m/20m/30m/30m/30m/60m/3h/3h/3h/6h/6h).
RETRY_SCHEDULE = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800,
                  21600, 21600)
POLL_S = 0.05          # how often the table is read when nothing wakes the deliverer
BATCH = 200            # notifications taken per read
IN_FLIGHT = 64         # deliveries at once


class OutboxMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter("paysandbox_notification_attempts",
                                "Notification deliveries tried, by result", ["result"],
                                registry=registry)
        self.pending = Gauge("paysandbox_outbox_pending", "Notifications not yet acknowledged",
                             registry=registry)


class Outbox:
    def __init__(self, store: Store, signer: PlatformSigner, clock: Clock,
                 metrics: OutboxMetrics) -> None:
        self.store = store
        self.signer = signer
        self.clock = clock
        self.metrics = metrics
        self.wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task] = {}
        self._limit = asyncio.Semaphore(IN_FLIGHT)
        self._session: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        """Deliver what is due, until cancelled."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        try:
            while True:
                self.wake.clear()
                for row in await self.store.due(time.time(), BATCH):
                    if row["id"] not in self._in_flight:
                        task = asyncio.create_task(self._deliver(row))
                        self._in_flight[row["id"]] = task
                        task.add_done_callback(
                            lambda _, key=row["id"]: self._in_flight.pop(key, None))
                self.metrics.pending.set(await self.store.pending_count())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), POLL_S)
        finally:
            for task in list(self._in_flight.values()):
                task.cancel()
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
            await self._session.close()

    async def _deliver(self, row) -> None:
        assert self._session is not None
        body = bytes(row["body"])
        headers = {**self.signer.headers(body, int(self.clock.wall())),
                   "Content-Type": "application/json"}
        async with self._limit:
            try:
                async with self._session.post(row["url"], data=body, headers=headers) as resp:
                    result = str(resp.status)
                    ok = resp.status < 300
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                result, ok = type(exc).__name__, False
        now = time.time()
        attempt = row["attempts"] + 1
        if ok:
            state, due = "delivered", now
        elif attempt > len(RETRY_SCHEDULE):
            state, due = "gave_up", now
            log.error("notification %s to %s gave up after %d attempts (last: %s)", row["id"],
                      row["url"], attempt, result)
        else:
            state, due = "pending", now + self.clock.real_seconds(RETRY_SCHEDULE[attempt - 1])
            log.warning("notification %s to %s answered %s; attempt %d again in %ss "
                        "(simulated)", row["id"], row["url"], result, attempt + 1,
                        RETRY_SCHEDULE[attempt - 1])
        self.metrics.attempts.labels("delivered" if ok else
                                     "gave_up" if state == "gave_up" else "failed").inc()
        await self.store.write(lambda conn: storage.attempted(conn, row["id"], state, result,
                                                              due, now))
