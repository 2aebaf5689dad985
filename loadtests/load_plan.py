"""From a scenario to what the load generator does: the city its customers come from, the
schedule of sessions in the simulated window, drawn from its traffic curve, and each load
worker's share of it.

The split is k6's execution segments at their simplest: worker k of N starts the sessions
whose index in the one-process schedule is k modulo N, under that index (the session's random
stream is named by it), at the same due time, for the same customer.  Whatever N is, the
union over workers is the one-process schedule, and every worker's arrival rate follows the
curve at 1/N of its height: neighbouring sessions go to different workers."""

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

    def share(self, worker: int, workers: int) -> list[tuple[int, Session]]:
        """Worker `worker` of `workers`: its sessions, each under its one-process index."""
        return [(number, self.schedule[number])
                for number in range(worker, len(self.schedule), workers)]

    def user_id(self, session: Session) -> int:
        ids = self.customers[session.persona]
        return ids[session.customer % len(ids)]


class SplitError(ValueError):
    """The scenario cannot be split over that many workers."""


def staff_share(staff: int, sides: int, worker: int, workers: int) -> list[int]:
    """The clerks (numbered 1.., clerk j working side j mod `sides`, as in one process) that
    worker `worker` of `workers` employs: consecutive groups of one clerk per side, dealt in
    turn, so that every worker has a clerk at each side's desk (its customers' paid orders
    wait at its own desk)."""
    if staff < workers:
        raise SplitError(f"{staff} clerks per side cannot be split over {workers} load "
                         "workers: each worker needs a clerk at every side's desk (raise "
                         "[load] staff or use fewer workers)")
    return [j for j in range(1, staff * sides + 1) if (j - 1) // sides % workers == worker]


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


def plan(scenario: Scenario, rate_factor: float = 1.0) -> LoadPlan:
    """The whole plan, as one process would run it (`LoadPlan.share` splits it)."""
    spec = scenario.spec
    city = build_city(scenario.preset, spec.city.seed)
    customers = city.customer_ids_by_persona()
    traffic = traffic_for(scenario, rate_factor)
    window = spec.window
    schedule = list(sessions(traffic, window.start, window.end, spec.city.seed,
                             {key: len(ids) for key, ids in customers.items()}))
    return LoadPlan(scenario, city,
                    Replay(window.start, window.end, window.real_seconds),
                    schedule, customers)
