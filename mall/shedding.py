"""Load shedding: at most `max_in_flight` requests run at once; the next ones wait in line,
at most `max_waiting` of them and for at most `max_wait_seconds`.  A request that finds the
line full, or waits too long, is refused at once with 503 and `Retry-After`, before its
handler runs, so nothing of it is written.

Without it an overloaded mall takes every request and answers all of them late: the queue
grows, every customer waits, and the mall recovers only after the crowd leaves.  With it the
requests it admits keep their latency (at most the wait bound plus their own time), the
others are told when to come back, as WeChat mini-programs retry, and the mall recovers as
soon as the load drops.  Liveness, readiness, metrics and the payer's notifications are
never shed: operations must see an overloaded mall, and a shed notification would only come
back on WeChat Pay's retry schedule."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .errors import error_response
from .metrics import MallMetrics

NEVER_SHED = frozenset({"/healthz", "/readyz", "/metrics", "/api/v1/payments/notify"})
RETRY_AFTER_S = 1


class LoadShedder:
    def __init__(self, max_in_flight: int, max_waiting: int, max_wait_seconds: float,
                 metrics: MallMetrics) -> None:
        if max_in_flight < 1 or max_waiting < 0 or max_wait_seconds <= 0:
            raise ValueError("load shedding needs max_in_flight >= 1, max_waiting >= 0 and "
                             "max_wait_seconds > 0")
        self.max_waiting = max_waiting
        self.max_wait_seconds = max_wait_seconds
        self._slots = asyncio.Semaphore(max_in_flight)
        self._waiting = 0
        self.shed = metrics.shed_requests
        self.in_flight = metrics.requests_in_flight

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        if request.path in NEVER_SHED:
            return await handler(request)
        if self._slots.locked():
            refused = await self._wait_for_a_slot()
            if refused is not None:
                return refused
        else:
            await self._slots.acquire()   # free: no wait, no task
        self.in_flight.inc()
        try:
            return await handler(request)
        finally:
            self.in_flight.dec()
            self._slots.release()

    async def _wait_for_a_slot(self) -> web.Response | None:
        if self._waiting >= self.max_waiting:
            return self._refuse("line_full")
        self._waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), self.max_wait_seconds)
        except TimeoutError:
            return self._refuse("waited_too_long")
        finally:
            self._waiting -= 1
        return None

    def _refuse(self, reason: str) -> web.Response:
        self.shed.labels(reason).inc()
        response = error_response(503, "overloaded", "the mall is busy; retry after "
                                  f"{RETRY_AFTER_S} s", None)
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
