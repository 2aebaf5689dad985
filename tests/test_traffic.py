"""Traffic curves: crests in their named windows, integrals that match the daily figure,
spikes where events put them, and replayable sessions."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime, timedelta

from shared.clock import SHANGHAI
from simulator import tables
from simulator.sessions import sessions
from simulator.traffic_curves import (
    Replay,
    Traffic,
    campus_promo,
    daily_sessions,
    flash_sale,
    in_window,
)

DAILY = daily_sessions(60_000)
FRIDAY = datetime(2026, 11, 27, tzinfo=SHANGHAI)


def city_per_minute(traffic: Traffic) -> list[float]:
    per_persona = [traffic.per_minute(p.key) for p in traffic.personas]
    return [sum(values) for values in zip(*per_persona, strict=True)]


def test_each_day_integrates_to_the_daily_sessions_within_one_percent():
    for day in ("weekday", "weekend"):
        traffic = Traffic(day, DAILY)
        # Integrate at one-second resolution, independently of how the curve was normalised.
        total = sum(traffic.base_rate(p.key, s / 60) for p in traffic.personas
                    for s in range(0, 86400, 1))
        assert abs(total - DAILY) / DAILY < 0.01, (day, total)


def test_crests_fall_in_their_named_windows():
    for name, peak in tables.peaks()["peak"].items():
        curve = city_per_minute(Traffic(peak.day, DAILY))
        minutes = [m for m in range(1440) if in_window(m + 0.5, peak.window)]
        crest = max(minutes, key=lambda m: curve[m])
        # A real crest: the curve falls away on both sides inside the window.
        assert crest not in (minutes[0], minutes[-1]), name
        if peak.crest:
            assert abs(crest - tables.minutes(peak.crest)) <= 20, (name, crest / 60)


def test_late_night_belongs_to_students_and_after_school_to_parents():
    traffic = Traffic("weekday", DAILY)
    at = lambda hhmm: FRIDAY + timedelta(minutes=tables.minutes(hhmm))  # noqa: E731
    late, school = traffic.rates(at("22:30")), traffic.rates(at("17:00"))
    assert late["student"] > 3 * traffic.rates(at("15:00"))["student"]
    assert max(school, key=school.get) == "parent"


def test_flash_sale_spikes_tens_of_times_within_seconds():
    sale_at = FRIDAY + timedelta(hours=20)
    traffic = Traffic("weekday", DAILY, events=[flash_sale(sale_at)])
    plain = Traffic("weekday", DAILY)
    baseline = plain.city_rate(sale_at)
    assert traffic.city_rate(sale_at + timedelta(seconds=2)) > 30 * baseline
    assert traffic.city_rate(sale_at + timedelta(minutes=3)) < 1.1 * baseline
    early = sale_at - timedelta(minutes=5)
    assert traffic.city_rate(early) == plain.city_rate(early)
    arrivals = list(sessions(traffic, sale_at - timedelta(seconds=60),
                             sale_at + timedelta(seconds=60), 7,
                             {p.key: 100 for p in traffic.personas}))
    before = sum(1 for s in arrivals if s.at < sale_at - timedelta(seconds=30))
    first_seconds = sum(1 for s in arrivals if sale_at <= s.at < sale_at + timedelta(seconds=10))
    assert first_seconds > 10 * max(before, 1) / 3


def test_campus_promotion_lifts_students_only_inside_its_window():
    promo = Traffic("weekday", DAILY, events=[campus_promo(("20:00", "22:00"))])
    plain = Traffic("weekday", DAILY)
    inside, outside = FRIDAY + timedelta(hours=21), FRIDAY + timedelta(hours=23)
    assert promo.rate("student", inside) == 3 * plain.rate("student", inside)
    assert promo.rate("parent", inside) == plain.rate("parent", inside)
    assert promo.rate("student", outside) == plain.rate("student", outside)


def test_sessions_are_replayable_and_follow_the_curve():
    traffic = Traffic("weekday", DAILY)
    start = FRIDAY + timedelta(hours=21)
    end = start + timedelta(minutes=30)
    customers = {p.key: 500 for p in traffic.personas}
    first = list(sessions(traffic, start, end, 7, customers))
    assert first == list(sessions(traffic, start, end, 7, customers))
    assert first != list(sessions(traffic, start, end, 8, customers))
    expected = sum(traffic.city_rate(start + timedelta(seconds=s)) for s in range(1800))
    assert abs(len(first) - expected) < 4 * expected ** 0.5  # Poisson: within 4 sigma
    assert all(a.at <= b.at for a, b in itertools.pairwise(first))
    mix = Counter(s.persona for s in first)
    assert mix.most_common(1)[0][0] in ("student", "young_professional")


def test_a_window_replays_compressed():
    start = FRIDAY + timedelta(hours=21)
    replay = Replay(start, start + timedelta(hours=5), real_seconds=600)
    assert replay.speed == 30
    assert replay.simulated(300) == start + timedelta(hours=2, minutes=30)
    assert replay.real_elapsed(start + timedelta(hours=1)) == 120
