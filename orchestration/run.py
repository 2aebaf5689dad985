"""`xingcheng run SCENARIO`: the main job.

Generate (or reuse) the scenario's city, start the mall on the scenario's simulated clock,
run Locust headless with the city's sessions, show live progress, then judge and write
`reports/<scenario>-<timestamp>/`.

A single run judges one mall against the scenario's thresholds: exit 0 when every threshold
holds, 1 when any fails.  A paired run (`--canary BUILD`) serves the baseline and the canary
side by side under one load, each on its own copy of the city, and the release gate judges
the canary against the baseline: exit 0 promote, 1 rollback, 3 hold.  Exit 2 whenever the
harness itself failed or was misused."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.live import Live
from rich.table import Table

from loadtests.scenario import ScenarioError
from loadtests.sides import BASELINE, CANARY
from mall.verification import NotVerifiable, verify
from monitoring.gate import table as gate_table
from monitoring.prometheus_server import PrometheusError, PrometheusServer
from monitoring.promql_source import instant_samples
from shared.clock import SHANGHAI
from simulator import campaigns
from simulator.city import build_city

from . import builds, cores, crashes
from .builds import Build, BuildError, free_port
from .crashes import Crash, Crashes, CrashSpecError, Restartable
from .databases import CACHE, Databases
from .judged_scenario import JudgedScenario, load_scenario
from .load_generator import LOCUSTFILE, ONE_PROCESS, LoadError, LoadGenerator, LoadShape
from .observed import Observed
from .report import evaluate, write

# Real seconds from starting the payer to the clock anchor: the payer, then the malls, then
# the load generator (it builds the city's schedule) get ready one after the other; the
# first sessions wait for the anchor, so the malls' clocks and the load's agree from the start.
# On a slow 2-core VM that took 1.6 + 1.6 + 2.7 s (on a quick one 0.3 + 0.3 + 2.5 s); a load
# generator ready after the anchor starts its first sessions late, and the run says so.
STARTUP_LEAD_S = 8.0
HARNESS_BUILD = Build("harness", "checkout", path=builds.REPO)
PASSED, FAILED, HARNESS = 0, 1, 2
INTERRUPTED = 130   # what a shell reports for a command stopped by Ctrl-C


class HarnessError(Exception):
    """The run could not be carried out (not a verdict on the mall)."""


def fetch(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def flatten(text: str, keep: tuple[str, ...] | None = None) -> dict[str, float]:
    """A Prometheus text page as {'name{label="v",...}': value}; with `keep`, only the
    samples whose names start with one of those (the page's other lines are not parsed:
    prometheus_client's parser is pure Python, and a mall's page is thousands of lines)."""
    if keep is not None:
        text = "".join(line + "\n" for line in text.splitlines() if line.startswith(keep))
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return samples


def scrape(url: str, keep: tuple[str, ...] | None = None) -> dict[str, float]:
    return flatten(fetch(url), keep)


# What the live table shows of each page (`live_table`), and how often it is drawn: every
# scrape costs the mall a multiprocess collection and the harness a parse, on the cores
# the run measures.
LIVE_LOADGEN = ("loadgen_",)
LIVE_MALL = ("mall_orders_total", "mall_gmv_yuan_total")
LIVE_SECONDS, PRINTED_SECONDS = 2, 10


def wait_ready(base: str, process: subprocess.Popen | None, seconds: float = 30) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise HarnessError(f"the mall at {base} exited with {process.returncode} while "
                               "starting; see its log in the report folder")
        try:
            return json.loads(fetch(f"{base}/readyz", timeout=2))
        except (OSError, ValueError):
            time.sleep(0.2)
    raise HarnessError(f"{base} did not become ready in {seconds:.0f}s")


def check_city(base: str, scenario: JudgedScenario) -> None:
    """Against an external mall: its store 1 must be the scenario city's store 1."""
    expected = build_city(scenario.preset, scenario.spec.city.seed).stores[0]
    try:
        store = json.loads(fetch(f"{base}/api/v1/stores/1"))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{base} does not serve store 1: {exc}") from exc
    if store.get("name") != expected.name:
        raise HarnessError(f"{base} does not hold the {scenario.spec.city.preset} city with "
                           f"seed {scenario.spec.city.seed} (store 1 is {store.get('name')!r})")


@dataclass
class Mall:
    """One side of the run: the build, where it answers, and its process if we started it
    (with the command and log that start it again after a crash)."""

    side: str
    build: Build
    url: str = ""
    process: subprocess.Popen | None = None
    command: list[str] = field(default_factory=list)
    log: Path = Path()
    cores: frozenset[int] | None = None   # cores of its own (orchestration/cores.py), or any

    def restartable(self) -> Restartable:
        def restart() -> None:
            self.process = builds.start(self.build, self.command, self.log, again=True,
                                        cores=self.cores)
            wait_ready(self.url, self.process, 30)

        return Restartable(lambda: crashes.kill(self.process), restart)


@dataclass
class Payer(Mall):
    """The payment sandbox of the run: one process that every mall started here pays through,
    run from the harness's own code (it stands for WeChat Pay, not for a build under test)."""

    side: str = "payer"
    build: Build = HARNESS_BUILD
    keys: Path = Path()
    sides: tuple[str, ...] = ()    # the sides whose build takes payments through it
    # The run's secrets (the payer's keys, a router's admin token) stay out of the report
    # folder, which is shared; `wind_down` removes them.
    private: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="xingcheng-")))


def start_malls(scenario: JudgedScenario, malls: list[Mall], payer: Payer, report_dir: Path,
                console: Console, faults: dict[str, Path],
                serve_args: tuple[str, ...] = (), shared_db: bool = False,
                pin: bool = True, databases: Databases | None = None) -> float:
    """The payment sandbox, then each side on its own copy of the city (or, `shared_db`, all
    on one copy, as in a gray release), all on the scenario's simulated clock; returns the
    clock's anchor: the real instant, a little ahead, at which every process's simulated
    time is the window's start and the load generator sends its first sessions.  With `pin`,
    each mall started gets a core per process where there are enough, and this process (with
    the payer and the load generator it starts) keeps to the others until `cores.release()`."""
    window = scenario.spec.window
    clock = f"{window.start.isoformat()}@{window.speed:g}"
    started = [mall for mall in malls if mall.build.kind != "url"]
    for mall in malls:
        if mall.build.kind == "url":
            mall.url = mall.build.url or ""
    databases = databases if databases is not None else Databases()
    for mall in started:   # the city first: building it may take a while
        db, fresh = databases.for_side(scenario, console, report_dir, mall.side, shared_db)
        if fresh:
            # The campaigns the city's merchants run in this window (flash sales).
            asyncio.run(campaigns.stage(db, scenario.spec.city.seed, window.start, window.end))
    placement = cores.place([mall.side for mall in started], pin, cores.processes_of(serve_args))
    if placement is not None:
        cores.keep_to(placement.rest)
        for mall in started:
            mall.cores = placement.malls[mall.side]
        console.print(f"cores: {placement.describe()} (--no-pin shares them)")
    since = time.time() + STARTUP_LEAD_S
    if started:
        port = free_port()
        payer.url, payer.keys = f"http://127.0.0.1:{port}", payer.private / "payment-keys.json"
        payer.command = ["paysandbox", "--db", str((report_dir / "paysandbox.db").resolve()),
                         "--keys", str(payer.keys.resolve()), "--port", str(port),
                         "--clock", clock, "--since", f"{since:.3f}"]
        payer.log = report_dir / "paysandbox.log"
        payer.process = builds.start(payer.build, payer.command, payer.log)
        wait_ready(payer.url, payer.process, 30)   # it writes the keyring the malls read
        payer.sides = tuple(mall.side for mall in started
                            if builds.supports(mall.build, "--payer"))
    for mall in started:
        port = free_port()
        mall.command = [*builds.mall_command(mall.build, databases.of(mall.side),
                                             port, clock, since, faults.get(mall.side),
                                             (payer.url, payer.keys)), *serve_args]
        mall.log = report_dir / f"mall-{mall.side}.log"
        mall.process = builds.start(mall.build, mall.command, mall.log, cores=mall.cores)
        mall.url = f"http://127.0.0.1:{port}"
    for mall in malls:
        ready = wait_ready(mall.url, mall.process, 30 if mall.process else 10)
        if mall.process is None:
            check_city(mall.url, scenario)
            _pay_where_it_pays(mall, ready, payer)
    return since


def _pay_where_it_pays(mall: Mall, ready: dict, payer: Payer) -> None:
    """A mall already running names its payer in /readyz: its customers' wallets pay there.
    A build from before the payer was a process names none and pays in the mall."""
    if "payer" not in ready:
        return
    its_payer = ready["payer"]
    if not its_payer:
        raise HarnessError(f"the {mall.side} mall at {mall.url} has no payer: start it with "
                           "--payer URL --payer-keys FILE (xingcheng paysandbox)")
    if payer.url and payer.url != its_payer:
        raise HarnessError(f"the {mall.side} mall pays through {its_payer}, the others "
                           f"through {payer.url}: one run, one payer")
    payer.url = its_payer
    payer.sides += (mall.side,)


@dataclass(frozen=True)
class RunSettings:
    """What a run is asked for: `xingcheng run`'s options, and each step of `capacity`."""

    scenario: str
    target: str | None = None          # a mall already running (a single run)
    reports: Path = Path("reports")
    loadgen_port: int = 0              # the load's metrics port (0: any free one)
    baseline: str | None = None        # a paired run's builds
    canary: str | None = None
    canary_share: float = 0.5
    canary_faults: Path | None = None
    prometheus: bool = False
    kills: tuple[str, ...] = ()        # crash rehearsals, WHO@SECONDS[+DOWN]
    rate_factor: float = 1.0
    serve_args: tuple[str, ...] = ()   # for every mall the run starts
    pin: bool = True
    databases: Databases = field(default_factory=Databases)
    load: LoadShape = ONE_PROCESS


def run(settings: RunSettings, console: Console | None = None) -> int:
    console = console or Console()
    try:
        scenario, malls, schedule = _prepare(settings)
    except (ScenarioError, BuildError, ValueError) as exc:
        console.print(f"[red]harness error:[/red] {exc}")
        return HARNESS
    stamp = datetime.now(SHANGHAI).strftime("%Y%m%d-%H%M%S")
    report_dir = settings.reports / f"{scenario.name}-{stamp}"
    report_dir.mkdir(parents=True, exist_ok=True)
    under_way = RunUnderWay(settings, scenario, malls, report_dir, console)
    databases = settings.databases
    ended: int | None = None
    verdict: dict | None = None
    try:
        under_way.start(schedule)
        verdict = under_way.drive()
    except (HarnessError, PrometheusError, CrashSpecError, LoadError) as exc:
        ended = harness_error(console, report_dir, exc)
    except KeyboardInterrupt:
        ended = interrupted(console, report_dir)
    finally:
        wind_down([mall.process for mall in malls] + [under_way.payer.process], databases,
                  console, verdict is not None, under_way.payer.private)
    if ended is not None:
        return ended
    verdict["facts"]["cores"] = {mall.side: sorted(mall.cores) for mall in malls if mall.cores}
    verdict["facts"]["engine"] = databases.engine
    try:
        _verify_sides(verdict, malls, report_dir, databases)
    finally:
        databases.drop(console)
    console.print(f"report: {report_dir}/report.html (summary.md, verdict.json)")
    return _conclude(scenario, verdict, console)


def _prepare(settings: RunSettings) -> tuple[JudgedScenario, list[Mall], list[Crash]]:
    """The scenario, the sides and the crash schedule, or the misuse that stops the run."""
    scenario = load_scenario(settings.scenario)
    schedule = [Crash.parse(spec) for spec in settings.kills]
    late = [c for c in schedule if c.at_s + c.down_s >= scenario.spec.window.real_seconds]
    if late:
        raise CrashSpecError(f"--kill {late[0].target}@{late[0].at_s:g}: the load lasts "
                             f"{scenario.spec.window.real_seconds:g} s; a crash must be "
                             "over before it ends")
    canary, baseline = settings.canary, settings.baseline
    if canary is None and (baseline is not None or settings.canary_faults is not None):
        raise ScenarioError("--baseline and --canary-faults need --canary BUILD")
    if canary is not None and settings.target is not None:
        raise ScenarioError("--target is for a single run; give --baseline URL instead")
    worktrees = CACHE / "builds"
    if canary is None:
        malls = [Mall(BASELINE, builds.resolve(settings.target or str(builds.REPO),
                                               worktrees))]
    else:
        malls = [Mall(BASELINE, builds.resolve(baseline or str(builds.REPO), worktrees)),
                 Mall(CANARY, builds.resolve(canary, worktrees))]
    if settings.canary_faults is not None and not settings.canary_faults.is_file():
        raise ScenarioError(f"{settings.canary_faults}: no such fault profile")
    return scenario, malls, schedule


def harness_error(console: Console, report_dir: Path, exc: Exception) -> int:
    console.print(f"[red]harness error:[/red] {exc}")
    console.print(f"report folder: {report_dir}")
    return HARNESS


def interrupted(console: Console, report_dir: Path) -> int:
    """Ctrl-C: no verdict; the caller stops its processes and drops its databases, as after
    any other end."""
    console.print(f"[red]interrupted[/red]: no verdict; what was written is in {report_dir}")
    return INTERRUPTED


def wind_down(processes: list, databases: Databases, console: Console,
              concluded: bool, private: Path) -> None:
    """Every process a run or rollout started is stopped, its cores released and its secrets
    removed; without a verdict to verify (a harness error, Ctrl-C, a bug on its way out) the
    databases go too, once nothing uses them."""
    for process in processes:
        builds.stop(process)
    cores.release()
    shutil.rmtree(private, ignore_errors=True)
    if not concluded:
        databases.drop(console)


def _verify_sides(verdict: dict, malls: list[Mall], report_dir: Path,
                  databases: Databases) -> None:
    """`xingcheng verify` on each side's database once its mall has stopped, and, after a
    crash rehearsal, whether the mall and the payer agree on every payment, into
    verdict.json (a mall already running elsewhere has no database here to verify)."""
    for mall in malls:
        side = verdict["sides"][mall.side]
        db = databases.of(mall.side)
        if mall.process is None or db is None:
            side["verify"] = {"verified": False, "why": "external mall: no database here"}
            continue
        if "crashes" in verdict["facts"] and (report_dir / "paysandbox.db").exists():
            side["payments"] = crashes.payments_agree(db, report_dir / "paysandbox.db")
        try:
            findings = asyncio.run(verify(db))
        except NotVerifiable as exc:
            side["verify"] = {"verified": False, "why": str(exc)}
            continue
        side["verify"] = {"verified": True, "holds": all(f.holds for f in findings),
                          "invariants": [asdict(f) for f in findings]}
    (report_dir / "verdict.json").write_text(json.dumps(verdict, indent=2, ensure_ascii=False)
                                             + "\n", encoding="utf-8")


def _conclude(scenario: JudgedScenario, verdict: dict, console: Console) -> int:
    breached = []
    for side, data in verdict["sides"].items():
        checked = data.get("verify", {})
        for finding in checked.get("invariants", []):
            if finding["breaches"]:
                breached.append(f"{side} {finding['name']}: {finding['breaches']} "
                                f"(e.g. {finding['rows'][:2]})")
        if checked.get("verified"):
            console.print(f"verify {side}: " + ", ".join(
                f"{f['name']} {f['breaches']}" for f in checked["invariants"]))
        elif checked:   # said, not left to verdict.json: nothing here vouches for its rows
            console.print(f"[yellow]verify {side}: not verified[/yellow] ({checked['why']})",
                          soft_wrap=True)
    if breached:
        console.print(f"[red]FAIL[/red] {scenario.name}: invariants broken:")
        console.print("; ".join(breached), soft_wrap=True, markup=False)
        return FAILED
    crashed = verdict["facts"].get("crashes")
    if crashed:
        seen = crashed["clients"]
        for crash in crashed["schedule"]:
            console.print(f"crash: {crash['target']} killed at {crash['killed_s']} s, back at "
                          f"{crash['back_s']} s")
        console.print(f"clients: {seen['failed_while_down']} failed requests while a process "
                      f"was down ({seen['connection_errors']} connection errors), "
                      f"{seen['failed_outside']} outside")
        if crashed["errors"] or seen["failed_outside"]:
            why = "; ".join(crashed["errors"]) or "; ".join(seen["outside_examples"])
            console.print(f"[red]FAIL[/red] {scenario.name}: a crash cost more than its "
                          f"downtime: {why}", soft_wrap=True)
            return FAILED
    if "gate" in verdict:
        gate = verdict["gate"]
        console.print(gate_table(gate))
        colour = {"promote": "green", "hold": "yellow", "rollback": "red"}[gate["verdict"]]
        deciding = "; ".join(gate.get("deciding", [])) or "every compared metric passes"
        console.print(f"[{colour}]{gate['verdict'].upper()}[/{colour}] {scenario.name}: "
                      f"{deciding}", soft_wrap=True)
        return gate["exit_code"]
    results = verdict["sides"][BASELINE]["thresholds"]
    failed = [r["threshold"] for r in results if not r["passed"]]
    if failed:
        console.print(f"[red]FAIL[/red] {scenario.name}: {'; '.join(failed)}", soft_wrap=True)
        return FAILED
    console.print(f"[green]PASS[/green] {scenario.name}: all {len(results)} thresholds hold")
    return PASSED


def locust_command(scenario: JudgedScenario, host: str, report_dir: Path, metrics_port: int,
                   since: float, rate_factor: float) -> list[str]:
    """Locust, headless, walking the scenario's sessions against `host` (one process; the
    master's command with workers, `LoadGenerator`); it stops by itself after the window and
    its drain."""
    spec = scenario.spec
    limit = spec.window.real_seconds + 3 * spec.load.drain_seconds + 120
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "--host", host, "--users", "1",
            "--spawn-rate", "1000",
            "--run-time", f"{int(limit)}s", "--stop-timeout", "5",
            "--csv", str(report_dir / "locust"), "--only-summary",
            "--exit-code-on-error", "0", "--loglevel", "WARNING",
            "--scenario", str(scenario.path), "--report-dir", str(report_dir),
            "--metrics-port", str(metrics_port), "--clock-since", f"{since:.3f}",
            "--rate-factor", f"{rate_factor:g}"]


class RunUnderWay:
    """One run from its malls' start to its verdict: what it was asked, what it started,
    where it writes."""

    def __init__(self, settings: RunSettings, scenario: JudgedScenario, malls: list[Mall],
                 report_dir: Path, console: Console) -> None:
        self.settings = settings
        self.scenario = scenario
        self.malls = malls
        self.report_dir = report_dir
        self.console = console
        self.faults = {CANARY: settings.canary_faults} if settings.canary_faults else {}
        self.payer = Payer()
        self.metrics_port = settings.loadgen_port or free_port()
        self.since = 0.0
        self.chaos = Crashes([], 0.0, {})

    @property
    def urls(self) -> dict[str, str]:
        return {mall.side: mall.url for mall in self.malls}

    def start(self, schedule: list[Crash]) -> None:
        """The payer and the malls, on the scenario's clock; the crash rehearsal armed."""
        for mall in self.malls:
            self.console.print(f"{mall.side}: {mall.build.describe()}" + (
                f", faults {self.faults[mall.side]}" if mall.side in self.faults else ""))
        settings = self.settings
        self.since = start_malls(self.scenario, self.malls, self.payer, self.report_dir,
                                 self.console, self.faults, settings.serve_args,
                                 pin=settings.pin, databases=settings.databases)
        restartable = {process.side: process.restartable()
                       for process in (*self.malls, self.payer) if process.process is not None}
        if settings.databases.engine == "postgresql":
            restartable["postgres"] = crashes.postgres_cluster()
        self.chaos = Crashes(schedule, self.since, restartable)

    def drive(self) -> dict:
        """The load, watched live (and by a real Prometheus if asked), then judged."""
        server = None
        if self.settings.prometheus:
            server = PrometheusServer(self.report_dir / "prometheus", self.report_dir.name,
                                      self.urls, f"127.0.0.1:{self.metrics_port}")
            server.start()
            self.console.print(f"prometheus {server.url} (storage {server.folder / 'data'})")
        try:
            return self._load(server)
        finally:
            if server is not None:
                server.stop()

    def _load_command(self, server: PrometheusServer | None) -> list[str]:
        settings, urls, payer = self.settings, self.urls, self.payer
        command = locust_command(self.scenario, urls[BASELINE], self.report_dir,
                                 self.metrics_port, self.since, settings.rate_factor)
        if CANARY in urls:
            command += ["--canary-host", urls[CANARY], "--canary-share",
                        str(settings.canary_share)]
        if payer.sides:
            command += ["--payer-host", payer.url, "--payer-sides", ",".join(payer.sides)]
        if server is not None:  # the load generator waits for Prometheus's last scrape
            command += ["--linger-seconds", "8"]
        return command

    def _load(self, server: PrometheusServer | None) -> dict:
        self.console.print(
            f"malls {', '.join(f'{s} {u}/metrics' for s, u in self.urls.items())}; load "
            f"({self.settings.load.describe()}) http://127.0.0.1:{self.metrics_port}/metrics; "
            f"report {self.report_dir}")
        started, started_at = time.monotonic(), time.time()
        with LoadGenerator(self._load_command(server), self.settings.load,
                           self.report_dir) as locust:
            self.chaos.start()
            prometheus_at = self._watch(locust, server, started)
        ended_at = time.time()
        self.chaos.join()
        locust.check()
        client_file = self.report_dir / "client.json"
        if not client_file.exists():
            raise HarnessError(f"the load generator wrote no {client_file.name}; see "
                               "loadgen.log")
        client = json.loads(client_file.read_text())
        if not client["finished"]:
            raise HarnessError("the load generator stopped before its schedule ended")
        if len(client["workers"]) > 1:
            for worker in client["workers"]:
                self.console.print(
                    f"load worker {worker['worker']} ({worker['host']}, pid {worker['pid']}): "
                    f"{worker['started']} of {worker['scheduled']} sessions started, "
                    f"{worker['late']} late (at most {worker['max_lateness_s']:g} s)")
        observed = self._observed(client)
        facts = self._facts(time.monotonic() - started, started_at, ended_at)
        results = {side: evaluate(self.scenario, seen) for side, seen in observed.items()}
        from_prometheus = None
        if server is not None:
            if prometheus_at is None:
                raise HarnessError("prometheus never scraped the load generator's final state")
            facts["prometheus"] = {"url": server.url, "at": prometheus_at,
                                   "storage": str(server.folder / "data")}
            from_prometheus = instant_samples(server.url, prometheus_at, self.report_dir.name)
        return write(self.report_dir, self.scenario, observed, results, facts,
                     self._builds_seen(), from_prometheus)

    def _watch(self, locust: LoadGenerator, server: PrometheusServer | None,
               started: float) -> float | None:
        """The live table until the load ends; when Prometheus scraped its final state."""
        final_metrics, prometheus_at = self.report_dir / "loadgen-metrics.prom", None
        console = self.console
        with Live(console=console, auto_refresh=False,
                  transient=not console.is_terminal) as live:
            every = LIVE_SECONDS if console.is_terminal else PRINTED_SECONDS
            last_drawn = 0.0
            while locust.poll() is None:
                time.sleep(1)
                if server is not None and prometheus_at is None and final_metrics.exists():
                    prometheus_at = server.wait_scraped(final_metrics.stat().st_mtime)
                elapsed = time.monotonic() - started
                if elapsed - last_drawn < every:
                    continue
                try:
                    loadgen = scrape(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                     LIVE_LOADGEN)
                    mall_now = {side: scrape(f"{url}/metrics", LIVE_MALL)
                                for side, url in self.urls.items()}
                except (OSError, ValueError):
                    continue
                last_drawn = elapsed
                table = live_table(self.scenario, loadgen, mall_now, elapsed)
                if console.is_terminal:
                    live.update(table, refresh=True)
                else:
                    console.print(table)
        return prometheus_at

    def _observed(self, client: dict) -> dict[str, Observed]:
        observed = {}
        for side, url in self.urls.items():
            try:
                text = fetch(f"{url}/metrics")
            except OSError as exc:
                raise HarnessError(f"the {side} mall stopped answering: {exc}") from exc
            (self.report_dir / f"mall-{side}.prom").write_text(text, encoding="utf-8")
            observed[side] = Observed(client, flatten(text), side)
        return observed

    def _facts(self, wall: float, started_at: float, ended_at: float) -> dict:
        spec, settings = self.scenario.spec, self.settings
        facts = {"window": f"{spec.window.start.isoformat()} - {spec.window.end.isoformat()}",
                 "speed": spec.window.speed, "real_seconds": spec.window.real_seconds,
                 "city": f"{spec.city.preset}/seed {spec.city.seed}",
                 "canary_share": settings.canary_share if CANARY in self.urls else None,
                 "wall_seconds": round(wall, 1),
                 "started_at": round(started_at, 3), "ended_at": round(ended_at, 3),
                 "clock_anchor": round(self.since, 3), "rate_factor": settings.rate_factor,
                 "load": self.settings.load.describe()}
        if self.chaos.crashes:
            facts["crashes"] = {"schedule": self.chaos.facts(), "errors": self.chaos.errors,
                                "clients": crashes.client_errors(
                                    self.report_dir / "requests.csv.gz", self.chaos.crashes)}
        return facts

    def _builds_seen(self) -> dict:
        return {mall.side: {"build": mall.build.spec, "kind": mall.build.kind,
                            "commit": mall.build.commit, "url": mall.url,
                            "faults": str(self.faults[mall.side]) if mall.side in self.faults
                            else None} for mall in self.malls}


def live_table(scenario: JudgedScenario, load: dict[str, float], malls: dict[str, dict[str, float]],
               elapsed: float) -> Table:
    """What the terminal shows each second: the clock, arrivals, and each side's health."""
    spec = scenario.spec
    sim = load.get("loadgen_simulated_time_seconds")
    clock = datetime.fromtimestamp(sim, SHANGHAI).strftime("%a %H:%M:%S") if sim else "-"
    table = Table(title=f"xingcheng run {scenario.name}", show_header=len(malls) > 1)
    table.add_column("")
    for side in malls:
        table.add_column(side)
    blank = [""] * (len(malls) - 1)
    table.add_row("simulated clock", f"{clock}  ({spec.window.speed:g}x)", *blank)
    table.add_row("elapsed", f"{elapsed:5.0f} s of {spec.window.real_seconds:.0f} s", *blank)
    table.add_row("sessions/s target | achieved",
                  f"{load.get('loadgen_target_sessions_per_second', 0):6.1f} | "
                  f"{load.get('loadgen_achieved_sessions_per_second', 0):6.1f}", *blank)
    table.add_row("late | walking", f"{load.get('loadgen_sessions_late_total', 0):.0f} | "
                  f"{load.get('loadgen_sessions_in_flight', 0):.0f}", *blank)
    rows: dict[str, list[str]] = {"sessions started": [], "p95 (all steps)": [],
                                  "server errors": [], "orders created | paid | completed": [],
                                  "GMV": []}
    session_stage, changes = 'stage="session"', ("created", "paid", "completed")
    for side, mall in malls.items():
        started = _sum(load, "loadgen_funnel_total", side, session_stage)
        rows["sessions started"].append(f"{started:.0f}")
        rows["p95 (all steps)"].append(f"{_p95(load, side) * 1000:.0f} ms")
        errors = (_sum(load, "loadgen_requests_total", side, 'status_class="5xx"')
                  + _sum(load, "loadgen_requests_total", side, 'status_class="error"'))
        rows["server errors"].append(f"{errors:.0f}")
        orders = [mall.get(f'mall_orders_total{{change="{c}"}}', 0) for c in changes]
        rows["orders created | paid | completed"].append(" | ".join(f"{n:.0f}" for n in orders))
        rows["GMV"].append(f"¥{mall.get('mall_gmv_yuan_total', 0):,.2f}")
    for label, cells in rows.items():
        table.add_row(label, *cells)
    return table


def _sum(load: dict[str, float], prefix: str, side: str, *needles: str) -> float:
    tag = f'side="{side}"'
    return sum(v for k, v in load.items()
               if k.startswith(prefix) and tag in k and all(n in k for n in needles))


def _p95(load: dict[str, float], side: str) -> float:
    """p95 over all steps of one side from the client histogram's cumulative buckets."""
    buckets: dict[float, float] = {}
    tag = f'side="{side}"'
    for key, value in load.items():
        if key.startswith("loadgen_request_duration_seconds_bucket") and tag in key:
            le = key.split('le="')[1].split('"')[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0) + value
    if not buckets or not buckets.get(float("inf")):
        return 0.0
    total = buckets[float("inf")]
    for bound in sorted(buckets):
        if buckets[bound] >= 0.95 * total:
            return bound if bound != float("inf") else max(b for b in buckets if b < bound)
    return 0.0
