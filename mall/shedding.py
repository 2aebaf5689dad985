"""Load shedding by queueing delay, as CoDel decides (RFC 8289): when requests have waited
longer than `target` for a whole `interval`, the mall is overloaded, and it refuses new
requests at once with 503 and `Retry-After` (before any handler runs, so nothing of them is
written) until the wait is back under the target.

What a request waits for in this mall is the event loop: its bytes sit in the socket and
its handler in the loop's ready queue while the loop works through everything that arrived
before.  A timer due every `PROBE_S` measures that wait (how late it runs), and each request
reads how overdue the next one already is (a burst queued in one turn of the loop keeps the
timer from running at all).  CoDel's rule looks only at waits that last, so a burst, a
garbage collection or a checkpoint that the queue absorbs within an interval sheds nothing,
and a standing queue sheds at once.  A queue is the loop's own work: the wait counts only
while the loop's thread was busy for most of it (`BUSY`, by its CPU time).  A machine that
takes the CPU away (a load generator on the same cores) delays requests too, but refusing
them would free nothing: at the standard late-night crest on this project's 2-core machines
the mall would otherwise shed a thousand requests while its loop was a third idle.  Nor is
the garbage collector's pause a queue: a full collection of a large heap (or a finaliser
it runs) can hold the loop's thread longer than an interval, and the requests that arrived
meanwhile are served within a few milliseconds after it; the collector's time on the loop's
thread is not counted as the loop's work (in the full test tier, whose one process holds
every test's leftovers, collections take up to 100 ms and more, and a 20-request burst was
once shed whole).  The rule
needs no tuning to the machine or the mix: a limit on requests in flight or waiting is
right for one cost per request and wrong for the next release.  Shedding stops at the first
probe under the target, so the mall recovers as soon as the crowd thins.

Without it an overloaded mall takes every request and answers all of them late: the queue
grows, every customer waits, and it recovers only after the crowd leaves.  Liveness,
readiness, metrics and the payer's notifications are never shed: operations must see an
overloaded mall, and a shed notification would only come back on WeChat Pay's retry
schedule."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

from aiohttp import web

from .errors import error_response
from .metrics import MallMetrics

NEVER_SHED = frozenset({"/healthz", "/readyz", "/metrics", "/api/v1/payments/notify"})
RETRY_AFTER_S = 1
PROBE_S = 0.005
BUSY = 0.7   # the loop thread's CPU time over the wait's wall time that makes it a queue


class LoadShedder:
    def __init__(self, target_seconds: float, interval_seconds: float,
                 metrics: MallMetrics) -> None:
        if target_seconds <= 0 or interval_seconds < target_seconds:
            raise ValueError("load shedding needs a target > 0 and an interval at least as "
                             "long as the target")
        self.target = target_seconds
        self.interval = interval_seconds
        self.shedding = False
        self._above_since: float | None = None   # when the wait went above the target
        self._due = float("inf")                  # when the probe is due next
        # (loop time, thread CPU time, collector seconds) at the last on-time probe
        self._on_time = (0.0, 0.0, 0.0)
        self._collecting = 0.0   # thread CPU time when the running collection began
        self._collected = 0.0    # the collector's CPU seconds on the loop's thread so far
        self._thread = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._probe: asyncio.TimerHandle | None = None
        self.shed = metrics.shed_requests.labels("queue_delay")
        self.wait = metrics.queue_delay
        # Admitted and not yet answered; read by the gauge when scraped (no lock per request).
        self.in_flight = 0
        metrics.requests_in_flight.set_function(lambda: self.in_flight)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        gc.callbacks.append(self._collector)
        self._on_time = (self._loop.time(), time.thread_time(), self._collected)
        self._due = self._loop.time() + PROBE_S
        self._probe = self._loop.call_at(self._due, self._measure)

    def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        self._due = float("inf")
        if self._collector in gc.callbacks:
            gc.callbacks.remove(self._collector)

    def _collector(self, phase: str, _info: dict) -> None:
        if threading.get_ident() != self._thread:
            return
        if phase == "start":
            self._collecting = time.thread_time()
        else:
            self._collected += time.thread_time() - self._collecting

    def _measure(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        waited = now - self._due
        self.wait.set(waited)
        if waited < self.target:
            self._above_since = None
            self.shedding = False
            self._on_time = (now, time.thread_time(), self._collected)
        else:
            self._waited_too_long(now)
        self._due = now + PROBE_S
        self._probe = self._loop.call_at(self._due, self._measure)

    def _waited_too_long(self, now: float) -> None:
        """The probe ran (or is still) later than the target: shed once that has lasted a
        whole interval, counted from when its wait passed the target, if the loop's thread
        spent it working; if it did not (the CPU went elsewhere, or to the collector), the
        count starts over."""
        went_above = self._due + self.target
        if self._above_since is None or went_above < self._above_since:
            self._above_since = went_above
        if now - self._above_since < self.interval:
            return
        since, cpu, collected = self._on_time
        working = time.thread_time() - cpu - (self._collected - collected)
        if working >= BUSY * (now - since):
            self.shedding = True
        else:
            self._above_since = None

    def overloaded(self) -> bool:
        if not self.shedding and self._loop is not None:
            now = self._loop.time()
            if now - self._due >= self.target:   # the probe is overdue: the loop is behind
                self._waited_too_long(now)
        return self.shedding

    def refusal(self) -> web.Response | None:
        """The 503 for a request arriving while the mall sheds, else None."""
        if not self.overloaded():
            return None
        self.shed.inc()
        response = error_response(503, "overloaded", "the mall is busy; retry after "
                                  f"{RETRY_AFTER_S} s", None)
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
