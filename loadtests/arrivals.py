"""An open workload: sessions start when the schedule says, whether or not earlier ones
have finished (as k6's arrival-rate executors do), not when a fixed set of users loops.

One dispatcher greenlet walks the precomputed schedule (this load worker's share of it,
each session under its index in the whole) and starts each session in a gevent
pool at its due time.  A session started more than `late_after` seconds after its due time
is counted late — never dropped — and every 10-second window records how many sessions
were due and how many started, so the achieved rate can be checked against the target."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import gevent
from gevent.pool import Pool

from simulator.sessions import Session
from simulator.traffic_curves import Replay

from .client_metrics import LoadMetrics

WINDOW_SECONDS = 10


@dataclass
class ArrivalLog:
    """Per 10-second window of real time: sessions due (target) and started (achieved)."""

    due: Counter = field(default_factory=Counter)
    started: Counter = field(default_factory=Counter)
    late: int = 0
    max_lateness: float = 0.0

    def handed_in(self) -> dict:
        """This log as plain data, for the master that merges the workers' logs."""
        return {"due": dict(self.due), "started": dict(self.started), "late": self.late,
                "max_lateness": self.max_lateness}

    @classmethod
    def merged(cls, parts: list[dict]) -> ArrivalLog:
        """The workers' logs as one: due and started added window by window."""
        log = cls()
        for part in parts:
            log.due.update({int(w): n for w, n in part["due"].items()})
            log.started.update({int(w): n for w, n in part["started"].items()})
            log.late += part["late"]
            log.max_lateness = max(log.max_lateness, part["max_lateness"])
        return log

    def windows(self) -> list[dict]:
        last = max([*self.due, *self.started, 0])
        return [{"window": w, "start_s": w * WINDOW_SECONDS,
                 "target_per_s": self.due[w] / WINDOW_SECONDS,
                 "achieved_per_s": self.started[w] / WINDOW_SECONDS}
                for w in range(last + 1)]

    def rate_error(self, above_per_s: float = 5.0) -> float | None:
        """Largest relative gap between achieved and target over windows busier than
        `above_per_s`; None when no window was that busy.  The last window is partial and
        left out."""
        busy = [w for w in self.windows()[:-1] if w["target_per_s"] > above_per_s]
        if not busy:
            return None
        return max(abs(w["achieved_per_s"] - w["target_per_s"]) / w["target_per_s"]
                   for w in busy)


class Dispatcher:
    def __init__(self, schedule: list[tuple[int, Session]], replay: Replay, pool: Pool,
                 walk: Callable[[int, Session], None], metrics: LoadMetrics,
                 late_after: float) -> None:
        self.schedule = schedule
        self.replay = replay
        self.pool = pool
        self.walk = walk
        self.metrics = metrics
        self.late_after = late_after
        self.log = ArrivalLog()
        for _, session in schedule:
            self.log.due[int(replay.real_elapsed(session.at) // WINDOW_SECONDS)] += 1
        self.origin = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.origin

    def begin(self, since: float | None = None) -> float:
        """Wait for the run's clock anchor (the real instant at which the malls' simulated
        time is the window's start; now if none) and set the origin there, so a session due
        at a simulated instant reaches the malls when their clocks show that instant.
        Returns the origin on the monotonic clock."""
        if since is not None:
            gevent.sleep(max(0.0, since - time.time()))
        behind = max(0.0, time.time() - since) if since is not None else 0.0
        self.origin = time.monotonic() - behind
        return self.origin

    def run(self) -> None:
        """Start every session at its time; returns when the last one has been started."""
        ticker = gevent.spawn(self._tick)
        try:
            for number, session in self.schedule:
                due = self.replay.real_elapsed(session.at)
                wait = due - self.elapsed()
                if wait > 0:
                    gevent.sleep(wait)
                self.metrics.sessions_scheduled.inc()
                self.pool.wait_available()
                now = self.elapsed()
                lateness = now - due
                if lateness > self.late_after:
                    self.log.late += 1
                    self.metrics.sessions_late.inc()
                self.log.max_lateness = max(self.log.max_lateness, lateness)
                self.log.started[int(now // WINDOW_SECONDS)] += 1
                self.pool.spawn(self.walk, number, session)
        finally:
            ticker.kill()

    def _tick(self) -> None:
        """Refresh the live gauges once a second."""
        while True:
            now = self.elapsed()
            window = int(now // WINDOW_SECONDS) - 1
            if window >= 0:
                self.metrics.target_rate.set(self.log.due[window] / WINDOW_SECONDS)
                self.metrics.achieved_rate.set(self.log.started[window] / WINDOW_SECONDS)
            self.metrics.simulated_time.set(self.replay.simulated(now).timestamp())
            self.metrics.sessions_in_flight.set(len(self.pool))
            gevent.sleep(1)

    def drain(self, timeout: float) -> int:
        """Wait for sessions still walking; returns how many were cut off."""
        self.pool.join(timeout=timeout)
        left = len(self.pool)
        self.pool.kill(block=False)
        return left
