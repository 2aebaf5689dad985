"""The Locust entry point: `locust -f loadtests/locustfile.py --scenario smoke ...`, in one
process, or as Locust's master (`--master --expect-workers N`) and N workers (`--worker`).

One user class, `CitySessions`: the city sending customers in.  Each load process that walks
(the only one, or each worker) runs one, which starts its share of the scenario's sessions
on schedule (an open workload; `load_plan` splits the schedule) and employs its share of the
store clerks working the pickup desks.  With `--canary-host`, two malls share the load: each
customer goes to one side by a stable hash (`loadtests.sides`), each side has its own desk
and clerks, and every sample carries its side.  The run ends by itself once every session
has started and the stragglers have drained; with workers, once every worker has handed its
results to the master (`load_master`), which writes the run's files."""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import socket
import tempfile
import time
from pathlib import Path

import gevent
from gevent.pool import Pool
from locust import User, constant, events, task
from locust.runners import MasterRunner, WorkerRunner

from loadtests.arrivals import Dispatcher
from loadtests.client_metrics import LoadMetrics
from loadtests.http_client import HttpClient
from loadtests.journeys import JourneyEnded, Pace, Side, Staff, Walk, customer_journey
from loadtests.load_master import RESULTS, LoadMaster, write_results
from loadtests.load_plan import LoadPlan, plan, staff_share
from loadtests.merged_metrics import snapshot
from loadtests.records import RunRecords
from loadtests.scenario import load_scenario
from loadtests.sides import BASELINE, CANARY, side_of
from loadtests.summary import side_summaries
from shared.masking import mask_log_handlers

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
    parser.add_argument("--scenario-text", default="", include_in_web_ui=False,
                        help=argparse.SUPPRESS)


class Run:
    """Everything one load process shares between its sessions and clerks: its share of the
    schedule (worker `worker` of `workers`; the whole of it in one process)."""

    def __init__(self, environment, plan: LoadPlan, worker: int = 0, workers: int = 1) -> None:
        options = environment.parsed_options
        self.environment = environment
        self.worker, self.workers = worker, workers
        self.plan = plan
        spec = self.plan.scenario.spec
        self.metrics = LoadMetrics()
        environment.events.request.add_listener(self.metrics.on_request)
        self.records = RunRecords(self.metrics)
        self.clock_since = options.clock_since
        self.pace = Pace(spec.window.speed)
        hosts = {BASELINE: environment.host}
        if options.canary_host:
            hosts[CANARY] = options.canary_host
        self.routed = options.gray_router
        if self.routed:  # one address; the router's answers tell the sides apart
            hosts[CANARY] = environment.host
        self.canary_share = options.canary_share if options.canary_host else 0.0
        self.clerks = staff_share(spec.load.staff, len(hosts), worker, workers)
        walking = math.ceil(spec.load.max_sessions / workers)
        # One connection pool per host for every walker: the API keeps no cookies, and a
        # session per walk cost ~10% of the CPU.
        pool_size = walking + len(self.clerks) * 2

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
        self.share = self.plan.share(worker, workers)
        self.dispatcher = Dispatcher(self.share, self.plan.replay, Pool(walking),
                                     self.walk_session, self.metrics,
                                     spec.load.late_after_seconds)
        self.cut_off = 0
        self.finished = False

    def walk(self, side: str) -> Walk:
        return Walk(self.sides[side], self.plan.city, self.metrics, self.records, self.pace,
                    self.usual_prices, routed=self.sides if self.routed else None,
                    experiment_response=self.plan.scenario.spec.experiment_response)

    def walk_session(self, number: int, session) -> None:
        user_id = self.plan.user_id(session)
        city = self.plan.city
        side = side_of(city.customers.openids[user_id - 1], self.canary_share)
        district = city.district_names[city.customers.district[user_id - 1]]
        walk = self.walk(side)
        walk.record = self.records.begin(number, None if self.routed else side,
                                         session.persona, district, session.journey, user_id,
                                         self.plan.replay.real_elapsed(session.at))
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

    def work(self) -> None:
        """Walk this process's share: sessions on schedule, clerks at the desks until the
        stragglers have drained and the desks are clear."""
        self.records.origin = self.dispatcher.begin(self.clock_since)
        clerks = [gevent.spawn(self.clerk, hired) for hired in self.clerks]
        self.dispatcher.run()
        spec = self.plan.scenario.spec
        self.cut_off = self.dispatcher.drain(spec.load.drain_seconds)
        for _ in range(int(spec.load.drain_seconds * 10)):
            if not any(len(side.desk) for side in self.sides.values()):
                break
            gevent.sleep(0.1)
        gevent.killall(clerks)
        self.finished = True
        self.metrics.finished.set(1)

    def clerk(self, hired: int) -> None:
        """Clerk number `hired` (its side and its random stream as in one process)."""
        rng = random.Random(f"{self.plan.scenario.spec.city.seed}:staff:{hired}")
        sides = list(self.sides)
        staff = Staff(self.walk(sides[hired % len(sides)]), rng)
        while True:
            try:
                if staff.work_once():
                    continue
            except JourneyEnded:
                pass
            gevent.sleep(0.1)

    def facts(self) -> dict:
        """Who this process is and how its share went, as the master names it."""
        log = self.dispatcher.log
        return {"worker": self.worker + 1, "workers": self.workers,
                "host": socket.gethostname(), "pid": os.getpid(),
                "scheduled": len(self.share), "started": sum(log.started.values()),
                "late": log.late, "max_lateness_s": round(log.max_lateness, 3),
                "cut_off": self.cut_off, "clerks": self.clerks, "finished": self.finished}

    def results(self) -> dict:
        return {"facts": self.facts(), "arrivals": self.dispatcher.log.handed_in(),
                "sides": side_summaries(self.metrics, self.outcomes),
                "records": self.records.handed_in(),
                "metrics": snapshot(self.metrics.registry)}


def _scenario(options):
    """The scenario as the master read it (a worker on another machine gets its text), or
    by name or path."""
    if not options.scenario_text:
        return load_scenario(options.scenario)
    with tempfile.TemporaryDirectory(prefix="xingcheng-scenario-") as folder:
        path = Path(folder) / f"{Path(options.scenario).stem}.toml"
        path.write_text(options.scenario_text, encoding="utf-8")
        return load_scenario(str(path))


def _plan(options) -> LoadPlan:
    return plan(_scenario(options), rate_factor=options.rate_factor)


RUN: Run | None = None
MASTER: LoadMaster | None = None


@events.init.add_listener
def _init(environment, **_) -> None:
    global MASTER
    options = environment.parsed_options
    if options is None:
        return
    mask_log_handlers()  # loadgen.log: a journey's traceback may quote a customer's phone
    report_dir = Path(options.report_dir) if options.report_dir else None
    if isinstance(environment.runner, MasterRunner):
        options.scenario_text = Path(_scenario(options).path).read_text(encoding="utf-8")
        MASTER = LoadMaster(environment, report_dir, options.metrics_port,
                            options.linger_seconds)
        CitySessions.fixed_count = options.expect_workers   # one per worker
    elif isinstance(environment.runner, WorkerRunner):
        environment.events.report_to_master.add_listener(_report)
    else:
        global RUN
        RUN = Run(environment, _plan(options))
        if options.metrics_port:
            RUN.metrics.serve(options.metrics_port)


def _report(client_id: str, data: dict) -> None:
    """A worker's report to the master (every few seconds): its metrics for the one scrape
    target, and how its share goes."""
    if RUN is not None:
        data["xingcheng"] = {"facts": RUN.facts(), "metrics": snapshot(RUN.metrics.registry)}


@events.quitting.add_listener
def _write_results(environment, **_) -> None:
    """One process writes its files when it quits, finished or not (the harness reads
    `finished`); workers have handed theirs to the master."""
    options = environment.parsed_options
    if RUN is None or not options or not options.report_dir or RUN.workers > 1 \
            or isinstance(environment.runner, WorkerRunner):
        return
    write_results(Path(options.report_dir), [RUN.results()], RUN.metrics.exposition())
    if options.linger_seconds:  # the metrics server thread keeps answering meanwhile
        time.sleep(options.linger_seconds)


class CitySessions(User):
    """The city sending customers in: one per load process that walks."""

    fixed_count = 1
    wait_time = constant(0)
    working = False

    @task
    def run_share(self) -> None:
        global RUN
        runner = self.environment.runner
        if CitySessions.working:   # a second one dispatched here: the share is walked once
            gevent.sleep(1e9)
        CitySessions.working = True
        if isinstance(runner, WorkerRunner):
            workers = self.environment.parsed_options.expect_workers
            if runner.worker_index >= workers:
                log.error("load worker index %d: the run expects %d workers; this one idles",
                          runner.worker_index, workers)
                gevent.sleep(1e9)
            # The city is built in a thread of its own: it takes seconds, and the worker's
            # heartbeats must go on meanwhile.
            options = self.environment.parsed_options
            built = gevent.get_hub().threadpool.apply(_plan, (options,))
            RUN = Run(self.environment, built, runner.worker_index, workers)
            RUN.work()
            runner.send_message(RESULTS, RUN.results())
            gevent.sleep(1e9)   # the master ends the run once every worker has handed in
        assert RUN is not None
        RUN.work()
        # quit() stops every user, this one included: call it from a greenlet of its own.
        gevent.spawn(runner.quit).join()
