"""The Locust entry point: `locust -f loadtests/locustfile.py --scenario smoke ...`.

Two user classes: one `CitySessions` dispatcher that starts the scenario's sessions on
schedule (an open workload), and `StoreStaff` clerks working the pickup desk.  The run
ends by itself once every session has started and the stragglers have drained."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import gevent
from gevent.pool import Pool
from geventhttpclient.client import HTTPClientPool
from locust import User, constant, events, task
from locust.contrib.fasthttp import FastHttpSession

from loadtests.arrivals import Dispatcher
from loadtests.client_metrics import LoadMetrics
from loadtests.journeys import JourneyEnded, Pace, Staff, Walk, customer_journey
from loadtests.load_plan import LoadPlan, plan
from loadtests.pickup_desk import PickupDesk
from loadtests.scenario import load_scenario
from loadtests.summary import client_summary

log = logging.getLogger("loadtests")


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument("--scenario", default="smoke", help="Scenario name or file")
    parser.add_argument("--report-dir", default="", help="Where summary.json goes")
    parser.add_argument("--metrics-port", type=int, default=0,
                        help="Serve load-generator metrics for Prometheus on this port")


class Run:
    """Everything one load-generator process shares between its users."""

    def __init__(self, environment) -> None:
        options = environment.parsed_options
        self.environment = environment
        self.plan: LoadPlan = plan(load_scenario(options.scenario))
        spec = self.plan.scenario.spec
        self.metrics = LoadMetrics()
        if options.metrics_port:
            self.metrics.serve(options.metrics_port)
        environment.events.request.add_listener(self.metrics.on_request)
        self.report_dir = Path(options.report_dir) if options.report_dir else None
        self.desk = PickupDesk()
        self.pace = Pace(spec.window.speed)
        # One HTTP session for every walker: the API keeps no cookies, connections come from
        # a shared keep-alive pool, and building a session per walk cost ~10% of the CPU.
        self.client = FastHttpSession(
            environment.host, environment.events.request, None,
            client_pool=HTTPClientPool(concurrency=spec.load.max_sessions + spec.load.staff * 2),
            network_timeout=30, connection_timeout=10)
        self.addresses: dict[int, int] = {}
        self.outcomes: dict[str, int] = {}
        self.dispatcher = Dispatcher(self.plan.schedule, self.plan.replay,
                                     Pool(spec.load.max_sessions), self.walk_session,
                                     self.metrics, spec.load.late_after_seconds)
        self.cut_off = 0
        self.finished = False

    def walk(self) -> Walk:
        return Walk(self.client, self.plan.city, self.desk, self.metrics, self.pace,
                    self.addresses)

    def walk_session(self, number: int, session) -> None:
        ids = self.plan.customers[session.persona]
        user_id = ids[session.customer % len(ids)]
        rng = random.Random(f"{self.plan.scenario.spec.city.seed}:walk:{number}")
        try:
            customer_journey(self.walk(), session, user_id, rng)
            outcome = session.journey
        except JourneyEnded as ended:
            outcome = f"ended: {ended}"
        except Exception as exc:  # a journey bug must not stop the run; it is reported
            log.exception("session %d failed", number)
            outcome = f"error: {type(exc).__name__}"
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


RUN: Run | None = None


@events.init.add_listener
def _init(environment, **_) -> None:
    global RUN
    if environment.parsed_options is None:
        return
    RUN = Run(environment)
    StoreStaff.fixed_count = RUN.plan.scenario.spec.load.staff


@events.quitting.add_listener
def _write_summary(environment, **_) -> None:
    if RUN is None or RUN.report_dir is None:
        return
    RUN.report_dir.mkdir(parents=True, exist_ok=True)
    summary = client_summary(RUN.metrics, RUN.dispatcher.log, RUN.outcomes, RUN.cut_off,
                             len(RUN.plan.schedule), RUN.finished)
    (RUN.report_dir / "client.json").write_text(json.dumps(summary, indent=1,
                                                           ensure_ascii=False))


class CitySessions(User):
    """The dispatcher: not a customer, but the city sending customers in."""

    fixed_count = 1
    wait_time = constant(0)

    @task
    def run_schedule(self) -> None:
        assert RUN is not None
        RUN.dispatcher.run()
        spec = RUN.plan.scenario.spec
        RUN.cut_off = RUN.dispatcher.drain(spec.load.drain_seconds)
        # Let the clerks clear the desk before stopping.
        for _ in range(int(spec.load.drain_seconds * 10)):
            if not len(RUN.desk):
                break
            gevent.sleep(0.1)
        RUN.finished = True
        # quit() stops every user, this one included: call it from a greenlet of its own.
        gevent.spawn(self.environment.runner.quit).join()


class StoreStaff(User):
    fixed_count = 4
    wait_time = constant(0)

    hired = 0

    def on_start(self) -> None:
        assert RUN is not None
        StoreStaff.hired += 1
        rng = random.Random(f"{RUN.plan.scenario.spec.city.seed}:staff:{StoreStaff.hired}")
        self.staff = Staff(RUN.walk(), rng)

    @task
    def serve(self) -> None:
        try:
            if not self.staff.work_once():
                self.wait_empty()
        except JourneyEnded:
            self.wait_empty()

    def wait_empty(self) -> None:
        gevent.sleep(0.1)
