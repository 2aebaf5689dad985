"""The sequence of shopping sessions in a window of simulated time, from one seed.

Arrivals are a non-homogeneous Poisson process drawn by thinning (Lewis and Shedler),
minute by minute against that minute's highest rate, so a flash-sale spike costs work only
where it happens.  Each session is given its persona (in proportion to the personas' rates
at that instant), its journey (from the persona's mix, or a flash-sale hunt for the share
of sessions a flash sale brings) and which of the persona's customers walks it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate

from . import tables
from .traffic_curves import Traffic

FLASH_HUNT = "flash_hunt"


@dataclass(frozen=True, slots=True)
class Session:
    at: datetime          # simulated instant the session starts
    persona: str
    journey: str
    customer: int         # index among the persona's customers


def _segment_peak(traffic: Traffic, start: datetime, seconds: float) -> float:
    """An upper bound of the city rate over a segment, sampled each second, plus margin."""
    samples = [traffic.city_rate(start + timedelta(seconds=s)) for s in range(int(seconds) + 1)]
    return max(samples) * 1.05


def sessions(traffic: Traffic, start: datetime, end: datetime, seed: int,
             customers: dict[str, int]) -> Iterator[Session]:
    """Sessions starting in [start, end), in time order; the same seed, the same sessions."""
    rng = random.Random(f"{seed}:sessions:{start.isoformat()}:{end.isoformat()}")
    personas = tables.personas()
    journeys = {p.key: (list(p.journeys), list(accumulate(p.journeys.values())))
                for p in personas}
    segment = start
    while segment < end:
        seconds = min(60.0, (end - segment).total_seconds())
        peak = _segment_peak(traffic, segment, seconds)
        offset = 0.0
        while True:
            offset += rng.expovariate(peak)
            if offset >= seconds:
                break
            moment = segment + timedelta(seconds=offset)
            rates = traffic.rates(moment)
            total = sum(rates.values())
            if rng.random() * peak >= total:
                continue  # thinned away
            persona = rng.choices(list(rates), weights=list(rates.values()))[0]
            names, cumulative = journeys[persona]
            journey = rng.choices(names, cum_weights=cumulative)[0]
            hunting = traffic.flash_share(moment)
            if hunting > 0 and rng.random() < hunting:   # no draw without a sale: replayable
                journey = FLASH_HUNT
            yield Session(moment, persona, journey, rng.randrange(max(customers[persona], 1)))
        segment += timedelta(seconds=seconds)
