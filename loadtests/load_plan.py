"""From a scenario to what the load generator does: the city its customers come from, the
schedule of sessions in the simulated window, drawn from its traffic curve."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.city import City, build_city
from simulator.sessions import Session, sessions
from simulator.traffic_curves import (
    PersonaMix,
    Replay,
    Traffic,
    campus_promo,
    daily_sessions,
    flash_sale,
)

from .scenario import Scenario


@dataclass
class LoadPlan:
    scenario: Scenario
    city: City
    replay: Replay
    schedule: list[Session]
    customers: dict[str, list[int]]   # persona -> user ids


def traffic_for(scenario: Scenario, rate_factor: float = 1.0) -> Traffic:
    """The scenario's traffic, its arrival rates scaled by `rate_factor` (capacity steps)."""
    spec = scenario.spec
    events: list = []
    if spec.mix:
        events.append(PersonaMix(dict(spec.mix)))
    if spec.events.flash_sale is not None:
        events.append(flash_sale(spec.events.flash_sale))
    if spec.events.campus_promo is not None:
        events.append(campus_promo(spec.events.campus_promo))
    return Traffic(spec.window.day, daily_sessions(scenario.daily_orders) * rate_factor,
                   events)


def plan(scenario: Scenario, worker: int = 0, workers: int = 1,
         rate_factor: float = 1.0) -> LoadPlan:
    """The whole plan; with several Locust workers, each takes every n-th session."""
    spec = scenario.spec
    city = build_city(scenario.preset, spec.city.seed)
    customers = city.customer_ids_by_persona()
    traffic = traffic_for(scenario, rate_factor)
    window = spec.window
    schedule = list(sessions(traffic, window.start, window.end, spec.city.seed,
                             {key: len(ids) for key, ids in customers.items()}))
    return LoadPlan(scenario, city,
                    Replay(window.start, window.end, window.real_seconds),
                    schedule[worker::workers], customers)
