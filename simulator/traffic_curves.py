"""How many shopping sessions start, per persona, at every moment of the day.

Each persona's day is a sum of bumps (data/personas.toml) over a small floor, normalised so
the whole day integrates to its share of the city's daily sessions.  Events (a flash sale,
a campus promotion) multiply the curve on top.  Rates are per simulated second; replaying
a window at speed k multiplies them by k in real time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from math import exp

from . import tables
from .tables import Persona, minutes

DAY_MINUTES = 1440
FLOOR = 0.03  # share of a persona's crest that is always there (someone is always awake)


def _bumps_at(bumps, minute: float) -> float:
    total = 0.0
    for bump in bumps:
        d = abs(minute - bump.at_minute) % DAY_MINUTES
        d = min(d, DAY_MINUTES - d)
        total += bump.weight * exp(-0.5 * (d / bump.width) ** 2)
    return total


def minute_of_day(moment: datetime) -> float:
    return moment.hour * 60 + moment.minute + moment.second / 60 + moment.microsecond / 6e7


def in_window(minute: float, window: tuple[str, str]) -> bool:
    start, end = minutes(window[0]), minutes(window[1])
    return start <= minute < end if start < end else minute >= start or minute < end


@dataclass(frozen=True)
class FlashSale:
    """Tens of times the baseline within seconds of the sale instant, then a decay."""

    at: datetime
    multiplier: float
    decay_seconds: float
    lead_seconds: float
    lead_multiplier: float

    def factor(self, moment: datetime, persona: str) -> float:
        dt = (moment - self.at).total_seconds()
        if dt >= 0:
            return 1.0 + (self.multiplier - 1.0) * exp(-dt / self.decay_seconds)
        if dt >= -self.lead_seconds:
            return 1.0 + (self.lead_multiplier - 1.0) * (1 + dt / self.lead_seconds)
        return 1.0


@dataclass(frozen=True)
class CampusPromo:
    """One persona's sessions multiplied inside a window of the day."""

    window: tuple[str, str]
    persona: str
    multiplier: float

    def factor(self, moment: datetime, persona: str) -> float:
        if persona == self.persona and in_window(minute_of_day(moment), self.window):
            return self.multiplier
        return 1.0


def flash_sale(at: datetime) -> FlashSale:
    spec = tables.peaks()["event"]["flash_sale"]
    return FlashSale(at, spec["multiplier"], spec["decay_seconds"], spec["lead_seconds"],
                     spec["lead_multiplier"])


def campus_promo(window: tuple[str, str]) -> CampusPromo:
    spec = tables.peaks()["event"]["campus_promo"]
    return CampusPromo(window, spec["persona"], spec["multiplier"])


def daily_sessions(daily_orders: float) -> float:
    return daily_orders / tables.peaks()["conversion"]


@dataclass
class Traffic:
    """Session arrival rates of one kind of day (weekday or weekend) and its events."""

    day: str
    daily_sessions: float
    events: list = field(default_factory=list)
    personas: tuple[Persona, ...] = field(default_factory=tables.personas)

    def __post_init__(self) -> None:
        if self.day not in ("weekday", "weekend"):
            raise ValueError(f"day must be weekday or weekend, not {self.day!r}")
        self._scale = {}
        for persona in self.personas:
            bumps = getattr(persona, self.day)
            crest = max(_bumps_at(bumps, m) for m in range(DAY_MINUTES))
            # The integral over the day (trapezoid at 1-second resolution is overkill; the
            # curve is smooth, so minute midpoints are exact to well below 0.1%).
            area = sum(self._shape(bumps, crest, m + 0.5) for m in range(DAY_MINUTES)) * 60
            self._scale[persona.key] = (bumps, crest,
                                        self.daily_sessions * persona.share / area)

    @staticmethod
    def _shape(bumps, crest: float, minute: float) -> float:
        return FLOOR + (1 - FLOOR) * _bumps_at(bumps, minute) / crest

    def base_rate(self, persona: str, minute: float) -> float:
        """Sessions per simulated second at a minute of the day, before events."""
        bumps, crest, scale = self._scale[persona]
        return self._shape(bumps, crest, minute) * scale

    def rate(self, persona: str, moment: datetime) -> float:
        value = self.base_rate(persona, minute_of_day(moment))
        for event in self.events:
            value *= event.factor(moment, persona)
        return value

    def rates(self, moment: datetime) -> dict[str, float]:
        return {p.key: self.rate(p.key, moment) for p in self.personas}

    def flash_share(self, moment: datetime) -> float:
        """Share of the sessions starting at `moment` that come for a flash sale: the
        event's lift over the usual traffic (0 without one)."""
        for event in self.events:
            if isinstance(event, FlashSale):
                return 1.0 - 1.0 / event.factor(moment, "")
        return 0.0

    def city_rate(self, moment: datetime) -> float:
        return sum(self.rates(moment).values())

    def per_minute(self, persona: str) -> list[float]:
        """Sessions starting in each minute of the day (before events)."""
        return [self.base_rate(persona, m + 0.5) * 60 for m in range(DAY_MINUTES)]


@dataclass(frozen=True)
class Replay:
    """A window of simulated time played back faster: 21:00-02:00 in 10 minutes is speed 30.
    Real-time rates are simulated rates times the speed."""

    start: datetime
    end: datetime
    real_seconds: float

    @property
    def speed(self) -> float:
        return (self.end - self.start).total_seconds() / self.real_seconds

    def simulated(self, real_elapsed: float) -> datetime:
        return self.start + timedelta(seconds=real_elapsed * self.speed)

    def real_elapsed(self, moment: datetime) -> float:
        return (moment - self.start).total_seconds() / self.speed


@dataclass(frozen=True)
class PersonaMix:
    """A scenario's override of the personas' weights (1.0 keeps a persona as it is)."""

    multipliers: dict[str, float]

    def factor(self, moment: datetime, persona: str) -> float:
        return self.multipliers.get(persona, 1.0)
