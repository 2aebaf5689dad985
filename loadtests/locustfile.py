"""The Locust entry point: `locust -f loadtests/locustfile.py --scenario smoke ...`.

Two user classes: one `CitySessions` dispatcher that starts the scenario's sessions on
schedule (an open workload), and `StoreStaff` clerks working the pickup desks.  With
`--canary-host`, two malls share the load: each customer goes to one side by a stable hash
(`loadtests.sides`), each side has its own desk and clerks, and every sample carries its side.
The run ends by itself once every session has started and the stragglers have drained."""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path

import gevent
from gevent.pool import Pool
from locust import User, constant, events, task

from loadtests.arrivals import Dispatcher
from loadtests.client_metrics import LoadMetrics
from loadtests.http_client import HttpClient
from loadtests.journeys import JourneyEnded, Pace, Side, Staff, Walk, customer_journey
from loadtests.load_plan import LoadPlan, plan
from loadtests.records import RunRecords
from loadtests.scenario import load_scenario
from loadtests.sides import BASELINE, CANARY, side_of
from loadtests.summary import client_summary
from mall.privacy import mask_log_handlers

log = logging.getLogger("loadtests")


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument("--scenario", default="smoke", help="Scenario name or file")
    parser.add_argument("--report-dir", default="", help="Where summary.json goes")
    parser.add_argument("--metrics-port", type=int, default=0,
                        help="Serve load-generator metrics for Prometheus on this port")
    parser.add_argument("--canary-host", default="",
                        help="A second mall (the canary) to share the load with --host")
    parser.add_argument("--canary-share", type=float, default=0.5,
                        help="Share of customers sent to the canary")
    parser.add_argument("--gray-router", action="store_true",
                        help="--host is a gray router in front of a baseline and a canary: "
                             "it decides each request's side and names it in its answer")
    parser.add_argument("--payer-host", default="",
                        help="The payment sandbox the customers' wallets pay through")
    parser.add_argument("--payer-sides", default="baseline,canary",
                        help="Sides whose malls take payments through --payer-host (a build "
                             "from before the sandbox was a process pays in the mall)")
    parser.add_argument("--rate-factor", type=float, default=1.0,
                        help="Scale the scenario's arrival rates (capacity steps)")
    parser.add_argument("--clock-since", type=float, default=None,
                        help="The real instant (Unix seconds) at which the malls' simulated "
                             "clocks show the window's start; the first sessions wait for it")
    parser.add_argument("--linger-seconds", type=float, default=0,
                        help="Keep serving metrics this long after the load ends (a last "
                             "Prometheus scrape)")


class Run:
    """Everything one load-generator process shares between its users."""

    def __init__(self, environment) -> None:
        options = environment.parsed_options
        self.environment = environment
        self.plan: LoadPlan = plan(load_scenario(options.scenario),
                                   rate_factor=options.rate_factor)
        spec = self.plan.scenario.spec
        self.metrics = LoadMetrics()
        if options.metrics_port:
            self.metrics.serve(options.metrics_port)
        environment.events.request.add_listener(self.metrics.on_request)
        self.records = RunRecords(self.metrics)
        self.report_dir = Path(options.report_dir) if options.report_dir else None
        self.linger = options.linger_seconds
        self.clock_since = options.clock_since
        self.pace = Pace(spec.window.speed)
        hosts = {BASELINE: environment.host}
        if options.canary_host:
            hosts[CANARY] = options.canary_host
        self.routed = options.gray_router
        if self.routed:  # one address; the router's answers tell the sides apart
            hosts[CANARY] = environment.host
        self.canary_share = options.canary_share if options.canary_host else 0.0
        # One connection pool per host for every walker: the API keeps no cookies, and a
        # session per walk cost ~10% of the CPU.
        pool_size = spec.load.max_sessions + spec.load.staff * 2

        def client(host: str) -> HttpClient:
            return HttpClient(host, environment.events.request, concurrency=pool_size)

        wallet = client(options.payer_host) if options.payer_host else None
        paying = set(options.payer_sides.split(","))
        self.sides = {name: Side(name, client(host), wallet if name in paying else None)
                      for name, host in hosts.items()}
        city = self.plan.city
        self.usual_prices = {sku["sku_id"]: sku["price_fen"] for store in city.stores
                             for product in store.products for sku in product["skus"]}
        self.outcomes: dict[str, dict[str, int]] = {name: {} for name in self.sides}
        self.dispatcher = Dispatcher(self.plan.schedule, self.plan.replay,
                                     Pool(spec.load.max_sessions), self.walk_session,
                                     self.metrics, spec.load.late_after_seconds)
        self.cut_off = 0
        self.finished = False

    def walk(self, side: str) -> Walk:
        return Walk(self.sides[side], self.plan.city, self.metrics, self.records, self.pace,
                    self.usual_prices, routed=self.sides if self.routed else None,
                    experiment_response=self.plan.scenario.spec.experiment_response)

    def walk_session(self, number: int, session) -> None:
        ids = self.plan.customers[session.persona]
        user_id = ids[session.customer % len(ids)]
        city = self.plan.city
        side = side_of(city.customers.openids[user_id - 1], self.canary_share)
        district = city.district_names[city.customers.district[user_id - 1]]
        walk = self.walk(side)
        walk.record = self.records.begin(number, None if self.routed else side,
                                         session.persona, district, session.journey)
        rng = random.Random(f"{self.plan.scenario.spec.city.seed}:walk:{number}")
        try:
            customer_journey(walk, session, user_id, rng)
            outcome = session.journey
        except JourneyEnded as ended:
            outcome = f"ended: {ended}"
        except Exception as exc:  # a journey bug must not stop the run; it is reported
            log.exception("session %d failed", number)
            outcome = f"error: {type(exc).__name__}"
        side = walk.side.name   # behind a router, the side its answers named
        self.records.end(walk.record, outcome, side)
        counts = self.outcomes[side]
        counts[outcome] = counts.get(outcome, 0) + 1


RUN: Run | None = None


@events.init.add_listener
def _init(environment, **_) -> None:
    global RUN
    if environment.parsed_options is None:
        return
    mask_log_handlers()  # loadgen.log: a journey's traceback may quote a customer's phone
    RUN = Run(environment)
    StoreStaff.fixed_count = RUN.plan.scenario.spec.load.staff * len(RUN.sides)


@events.quitting.add_listener
def _write_summary(environment, **_) -> None:
    if RUN is None or RUN.report_dir is None:
        return
    RUN.report_dir.mkdir(parents=True, exist_ok=True)
    summary = client_summary(RUN.metrics, RUN.dispatcher.log, RUN.outcomes, RUN.cut_off,
                             len(RUN.plan.schedule), RUN.finished)
    (RUN.report_dir / "client.json").write_text(json.dumps(summary, indent=1,
                                                           ensure_ascii=False))
    (RUN.report_dir / "loadgen-metrics.prom").write_bytes(RUN.metrics.exposition())
    RUN.records.write(RUN.report_dir)
    if RUN.linger:  # the metrics server thread keeps answering while this one waits
        time.sleep(RUN.linger)


class CitySessions(User):
    """The dispatcher: not a customer, but the city sending customers in."""

    fixed_count = 1
    wait_time = constant(0)

    @task
    def run_schedule(self) -> None:
        assert RUN is not None
        RUN.records.origin = RUN.dispatcher.begin(RUN.clock_since)
        RUN.dispatcher.run()
        spec = RUN.plan.scenario.spec
        RUN.cut_off = RUN.dispatcher.drain(spec.load.drain_seconds)
        # Let the clerks clear the desk before stopping.
        for _ in range(int(spec.load.drain_seconds * 10)):
            if not any(len(side.desk) for side in RUN.sides.values()):
                break
            gevent.sleep(0.1)
        RUN.finished = True
        RUN.metrics.finished.set(1)
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
        sides = list(RUN.sides)
        self.staff = Staff(RUN.walk(sides[StoreStaff.hired % len(sides)]), rng)

    @task
    def serve(self) -> None:
        try:
            if not self.staff.work_once():
                self.wait_empty()
        except JourneyEnded:
            self.wait_empty()

    def wait_empty(self) -> None:
        gevent.sleep(0.1)
