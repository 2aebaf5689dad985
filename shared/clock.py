"""The mall's one clock.

Every business time rule (opening hours, order expiry, "today's orders") reads
`Clock.now()`, so the simulator can run the mall on simulated time: a clock that
starts at 21:00 and runs 30 times faster lets a whole late-night peak pass in ten
minutes.  Transport security (payment notification freshness, token expiry) reads
`Clock.wall()` instead: a forged notification must not become fresh because the
simulation runs fast.

A simulated clock is anchored to a real instant (`since`, Unix seconds): simulated time is
`start` at `since` and runs `speed` times faster from there.  Anchored to the wall rather than
to the process, it is continuous: a mall restarted in the middle of a run resumes where
simulated time has got to instead of going back to `start`, and every process of a run (the
malls, the payer, the load generator) given the same start, speed and anchor reads the same
simulated instant.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock:
    """Simulated time = start + (real time since the anchor) x speed, in Asia/Shanghai.

    Without a start it is the real clock (start now, speed 1), which needs no anchor."""

    def __init__(self, start: datetime | None = None, speed: float = 1.0,
                 since: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        if start is not None and start.tzinfo is None:
            raise ValueError("clock start must be timezone-aware")
        if since is not None and not math.isfinite(since):
            raise ValueError("clock anchor must be a finite number of Unix seconds")
        self.speed = speed
        self.simulated = start is not None
        self.start = (start or datetime.now(SHANGHAI)).astimezone(SHANGHAI)
        self.since = time.time() if since is None else since

    @classmethod
    def parse(cls, spec: str, since: float | None = None) -> Clock:
        """Parse `2026-11-27T21:00+08:00@30` (instant, optionally `@speed`)."""
        instant, _, speed = spec.partition("@")
        try:
            start = datetime.fromisoformat(instant)
        except ValueError as exc:
            raise ValueError(f"clock start {instant!r} is not an ISO 8601 instant") from exc
        if start.tzinfo is None:
            raise ValueError(f"clock start {instant!r} needs a UTC offset, e.g. +08:00")
        try:
            factor = float(speed) if speed else 1.0
        except ValueError as exc:
            raise ValueError(f"clock speed {speed!r} is not a number") from exc
        return cls(start, factor, since)

    @staticmethod
    def parse_since(text: str) -> float:
        """An anchor: Unix seconds (`1795588546.8`) or an ISO 8601 instant with its offset."""
        try:
            return float(text)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"clock anchor {text!r} is neither Unix seconds nor an ISO 8601 "
                             "instant") from exc
        if moment.tzinfo is None:
            raise ValueError(f"clock anchor {text!r} needs a UTC offset, e.g. +08:00")
        return moment.timestamp()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.since) * self.speed)

    def anchor(self) -> str:
        """The clock as one line of text, to store with the database and to compare."""
        return f"{self.start.isoformat()}@{self.speed:g}@{self.since:.3f}"

    def same_simulation(self, anchor: str) -> bool:
        """Whether a stored anchor is of this clock's simulation (same start and speed)."""
        start, speed, _ = anchor.rsplit("@", 2)
        return start == self.start.isoformat() and speed == f"{self.speed:g}"

    def resume(self, anchor: str) -> None:
        """Take over a stored anchor of the same simulation: time goes on from there."""
        self.since = float(anchor.rsplit("@", 1)[1])

    def settle(self, stored: str | None, resume: bool, log: logging.Logger) -> str | None:
        """Keep simulated time continuous across restarts of a process on one database:
        a restart of the same simulation (same start and speed) goes on from the `stored`
        anchor; a first start, or another simulation, or an anchor given explicitly
        (`resume` False), is the new anchor.  Returns the anchor to store, None if none."""
        if resume and stored is not None and self.same_simulation(stored):
            self.resume(stored)
            log.info("simulated time resumes from the stored anchor %s", stored)
            return None
        if stored is not None and stored != self.anchor():
            log.warning("simulated time restarts: anchor %s replaces %s", self.anchor(), stored)
        return self.anchor()

    def stamp(self, moment: datetime | None = None) -> str:
        """The one text form of an instant in storage: sortable, millisecond, +08:00."""
        return (moment or self.now()).astimezone(SHANGHAI).isoformat(timespec="milliseconds")

    @staticmethod
    def wall() -> float:
        """Real seconds since the epoch, for security windows that must not speed up."""
        return time.time()

    def real_seconds(self, simulated_seconds: float) -> float:
        """How long a simulated span lasts in real time."""
        return simulated_seconds / self.speed

    async def sleep(self, simulated_seconds: float) -> None:
        await asyncio.sleep(self.real_seconds(simulated_seconds))

    def describe(self) -> str:
        return f"{self.now().isoformat(timespec='seconds')}@{self.speed:g}"
