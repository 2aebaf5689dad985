"""The mall's one clock.

Every business time rule (opening hours, order expiry, "today's orders") reads
`Clock.now()`, so the simulator can run the mall on simulated time: a clock that
starts at 21:00 and runs 30 times faster lets a whole late-night peak pass in ten
minutes.  Transport security (payment notification freshness, token expiry) reads
`Clock.wall()` instead: a forged notification must not become fresh because the
simulation runs fast.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock:
    """Simulated time = start + (real time elapsed) x speed, always in Asia/Shanghai."""

    def __init__(self, start: datetime | None = None, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        if start is not None and start.tzinfo is None:
            raise ValueError("clock start must be timezone-aware")
        self.speed = speed
        self._start = (start or datetime.now(SHANGHAI)).astimezone(SHANGHAI)
        self._origin = time.monotonic()

    @classmethod
    def parse(cls, spec: str) -> Clock:
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
        return cls(start, factor)

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._origin) * self.speed
        return self._start + timedelta(seconds=elapsed)

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
