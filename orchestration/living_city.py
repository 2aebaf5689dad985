"""`xingcheng up`: the simulated city alive until Ctrl-C, for a developer trying the
mini-program against it and a merchant watching their store.

The payer and the mall start as a run starts them, in a folder of their own that a second
`up` resumes (the same databases, the simulated clock going on from where it stopped).  The
crowd is the run's load generator, one Locust process per chunk of simulated hours: each
chunk is a scenario of its own (the base scenario's city, mix and staff, its window the
chunk's hours, weekday or weekend by its date), started a little ahead of its window so
that it has built its plan when its first sessions are due, while the last chunk drains.
The chunks' processes take turns on two metrics ports, which one Prometheus scrapes.

Ctrl-C stops the crowd, then the mall, then the payer (each started in a session of its
own, so the terminal's interrupt reaches only this process), checks the mall's invariants
with `verify`, and saves where the clock stopped."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console

from loadtests.scenario import ScenarioError, ScenarioFile, load_scenario
from loadtests.sides import BASELINE
from mall.verification import NotVerifiable, verify
from monitoring.prometheus_server import PrometheusError, PrometheusServer
from shared.clock import SHANGHAI
from simulator.city import build_city

from . import builds
from .builds import free_port
from .databases import CACHE, Databases
from .run import HarnessError, Mall, Payer, locust_command, scrape, start_malls

CHUNK = timedelta(hours=6)      # simulated hours per load process
LEAD_S = 20.0                   # real seconds a chunk's load starts before its window
STATE = "city.json"             # where the clock stopped, and the database it ran on
LIVE_EVERY_S = 5.0
MADE_HERE = ("mall-baseline.db", "mall-baseline.db-wal", "mall-baseline.db-shm",
             "paysandbox.db", "paysandbox.db-wal", "paysandbox.db-shm", "paysandbox.log",
             "mall-baseline.log", STATE, "loads", "prometheus")
CUSTOMERS_SHOWN = 3


@dataclass(frozen=True)
class UpSettings:
    """`xingcheng up`'s options."""

    folder: Path = Path("xingcheng-city")
    scenario: str = "late-night"        # the city, mix and staff; its start is the default
    at: str | None = None               # HH:MM, an ISO instant, or a scenario's name
    speed: float = 1.0
    rate_factor: float = 1.0
    quiet: bool = False                 # no background crowd
    fresh: bool = False
    prometheus: bool = True             # when Debian's prometheus is installed
    serve_args: tuple[str, ...] = ()
    databases: Databases = field(default_factory=Databases)


def start_instant(at: str | None, default: datetime) -> datetime:
    """Where the clock starts: a time of day on the base scenario's day, an ISO instant
    (Asia/Shanghai if it names no offset), or the start of a named scenario's window."""
    if at is None:
        return default
    try:
        hour, minute = (int(part) for part in at.split(":"))
        return default.replace(hour=hour, minute=minute, second=0, microsecond=0)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(at)
        return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)
    except ValueError:
        pass
    try:
        return load_scenario(at).spec.window.start
    except ScenarioError as exc:
        raise ScenarioError(f"--at {at}: not HH:MM, an ISO 8601 instant, or a scenario "
                            f"({exc})") from exc


def chunk_scenario(base: ScenarioFile, start: datetime, speed: float, to: Path) -> Path:
    """The base scenario with its window replaced by [start, start + CHUNK) at `speed`, and
    nothing to judge: the crowd of one chunk."""
    day = "weekend" if start.weekday() >= 5 else "weekday"
    city = base.city
    lines = [f'name = "up-{start:%Y%m%d-%H%M}"', "[window]", f'day = "{day}"',
             f'start = "{start.isoformat()}"', f'end = "{(start + CHUNK).isoformat()}"',
             f"speed = {speed:g}", "[city]", f'preset = "{city.preset}"', f"seed = {city.seed}"]
    if city.daily_orders:
        lines.append(f"daily_orders = {city.daily_orders}")
    lines += ["[load]", f"staff = {base.load.staff}",
              f"max_sessions = {base.load.max_sessions}", "drain_seconds = 30"]
    if base.mix:
        lines += ["[mix]", *(f"{k} = {v:g}" for k, v in base.mix.items())]
    to.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return to


class LivingCity:
    def __init__(self, settings: UpSettings, console: Console) -> None:
        self.settings = settings
        self.console = console
        self.folder = settings.folder
        self.base = load_scenario(settings.scenario)
        self.mall = Mall(BASELINE, builds.resolve(str(builds.REPO), CACHE / "builds"))
        self.payer = Payer()
        self.crowd: list[tuple[int, subprocess.Popen]] = []
        self.ports = (free_port(), free_port())   # the chunks' metrics, in turn
        self.start = self.since = 0.0
        self.began: datetime = self.base.spec.window.start
        self.prometheus: PrometheusServer | None = None
        self.stopped = self.began   # where the clock was last saved

    def now(self) -> datetime:
        """The simulated clock, as the mall and the crowd run it."""
        return self.began + timedelta(seconds=(time.time() - self.since) * self.settings.speed)

    def open(self) -> None:
        """The folder, the payer and the mall, on the clock where it starts or resumes."""
        settings, folder = self.settings, self.folder
        state_file = folder / STATE
        if settings.fresh:
            for name in MADE_HERE:
                path = folder / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "loads").mkdir(exist_ok=True)
        if state and settings.at is None:
            self.began = datetime.fromisoformat(state["clock"])
        else:
            self.began = start_instant(settings.at, self.base.spec.window.start)
        if state.get("engine") == settings.databases.engine == "postgresql":
            settings.databases.made[BASELINE] = state["database"]   # the city goes on
        first = chunk_scenario(self.base.spec, self.began, settings.speed,
                               folder / "loads" / "chunk-0000.toml")
        self.since = start_malls(load_scenario(str(first)), [self.mall], self.payer, folder,
                                 self.console, {}, settings.serve_args, pin=False,
                                 databases=settings.databases)
        self._save()
        if settings.prometheus and shutil.which("prometheus"):
            self.prometheus = PrometheusServer(
                folder / "prometheus", "up", {BASELINE: self.mall.url},
                tuple(f"127.0.0.1:{port}" for port in self.ports))
            self.prometheus.start()

    def _save(self) -> None:
        self.stopped = self.now() if self.since else self.began
        state = {"clock": self.stopped.isoformat(),
                 "speed": self.settings.speed, "scenario": self.base.name,
                 "engine": self.settings.databases.engine,
                 "database": str(self.settings.databases.of(BASELINE))}
        (self.folder / STATE).write_text(json.dumps(state, indent=1))

    def tell(self) -> None:
        """Where everything is, once: URLs, an operator token, a merchant, customers."""
        db = self.settings.databases.of(BASELINE)
        token = subprocess.run([sys.executable, "-m", "xingcheng.cli", "token", "--operator",
                                "--db", str(db)], capture_output=True, text=True, check=True)
        spec = self.base.spec.city
        city = build_city(self.base.preset, spec.seed)
        at = self.began.strftime("%H:%M")
        store = next((s for s in city.stores if _open(s.opens_at, s.closes_at, at)),
                     city.stores[0])
        lines = [
            f"mall        {self.mall.url}   (API {self.mall.url}/api/v1, "
            f"metrics {self.mall.url}/metrics)",
            f"dashboard   {self.mall.url}/merchant/",
            f"payer       {self.payer.url}",
            "crowd       " + ("none (--quiet-city)" if self.settings.quiet else ", ".join(
                f"http://127.0.0.1:{port}/metrics" for port in self.ports) + " (in turn)"),
            f"prometheus  {self.prometheus.url if self.prometheus else 'not started'}",
            f"operator    Authorization: Bearer {token.stdout.strip()}",
            f"merchant    {store.name} (store {store.id}): log in with code "
            f"sandbox:{store.merchant_openid}",
            "customers   " + ", ".join(f"sandbox:{openid}" for openid in
                                       city.customers.openids[:CUSTOMERS_SHOWN]),
            f"clock       {self.began:%Y-%m-%d %H:%M} at {self.settings.speed:g}x; "
            f"folder {self.folder} (Ctrl-C stops; `xingcheng up` again resumes)"]
        for line in lines:
            self.console.print(line, soft_wrap=True, highlight=False)

    def live(self) -> None:
        """The crowd, chunk after chunk, and a line of how the city is doing, until Ctrl-C."""
        settings, n = self.settings, 0
        chunk_start = self.began
        next_chunk_at = time.time()   # the first chunk starts at once
        last_line = 0.0
        while True:
            if not settings.quiet and time.time() >= next_chunk_at:
                self._start_chunk(n, chunk_start)
                n += 1
                chunk_start += CHUNK
                real = CHUNK.total_seconds() / settings.speed
                due = self.since + (chunk_start - self.began).total_seconds() / settings.speed
                next_chunk_at = due - min(LEAD_S, real / 2)
            self._reap()
            if time.time() - last_line >= LIVE_EVERY_S:
                last_line = time.time()
                self.console.print(self._line(), highlight=False)
                self._save()
            time.sleep(0.5)

    def _start_chunk(self, n: int, start: datetime) -> None:
        folder = self.folder / "loads" / f"chunk-{n:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        scenario = load_scenario(str(chunk_scenario(self.base.spec, start, self.settings.speed,
                                                    folder / "scenario.toml")))
        since = self.since + (start - self.began).total_seconds() / self.settings.speed
        command = locust_command(scenario, self.mall.url, folder, self.ports[n % 2], since,
                                 self.settings.rate_factor)
        if self.payer.sides:
            command += ["--payer-host", self.payer.url, "--payer-sides",
                        ",".join(self.payer.sides)]
        with (folder / "loadgen.log").open("w") as log:
            self.crowd.append((n, subprocess.Popen(command, stdout=log,
                                                   stderr=subprocess.STDOUT,
                                                   start_new_session=True)))

    def _reap(self) -> None:
        for n, process in list(self.crowd):
            if process.poll() is not None:
                self.crowd.remove((n, process))
                if process.returncode != 0:
                    log = self.folder / "loads" / f"chunk-{n:04d}" / "loadgen.log"
                    self.console.print(f"[yellow]the crowd of chunk {n} stopped with "
                                       f"{process.returncode}[/yellow]; see {log}")

    def _line(self) -> str:
        try:
            mall = scrape(f"{self.mall.url}/metrics", ("mall_orders_total",
                                                       "mall_http_requests_total"))
        except (OSError, ValueError):
            return f"{self.now():%a %H:%M:%S}  the mall does not answer its metrics"
        rate = 0.0
        for port in self.ports:
            try:
                load = scrape(f"http://127.0.0.1:{port}/metrics",
                              ("loadgen_achieved_sessions_per_second",))
                rate += load.get("loadgen_achieved_sessions_per_second", 0.0)
            except (OSError, ValueError):
                pass
        orders = {change: mall.get(f'mall_orders_total{{change="{change}"}}', 0)
                  for change in ("created", "paid")}
        errors = sum(v for k, v in mall.items() if 'status_class="5xx"' in k)
        return (f"{self.now():%a %H:%M:%S}  {rate:5.1f} sessions/s  orders "
                f"{orders['created']:.0f} placed, {orders['paid']:.0f} paid  "
                f"5xx {errors:.0f}")

    def close(self) -> int:
        """The crowd, then the mall, then the payer; `verify`; the clock saved.  0 when the
        invariants hold."""
        if self.since:
            self._save()
        for _, process in self.crowd:
            builds.stop(process)
        builds.stop(self.mall.process)
        builds.stop(self.payer.process)
        if self.prometheus is not None:
            self.prometheus.stop()
        shutil.rmtree(self.payer.private, ignore_errors=True)
        db = self.settings.databases.of(BASELINE)
        if db is None:
            return 2
        try:
            findings = asyncio.run(verify(db))
        except NotVerifiable as exc:
            self.console.print(f"[red]cannot verify:[/red] {exc}")
            return 2
        breached = {f.name: f.breaches for f in findings if not f.holds}
        if breached:
            self.console.print(f"[red]verify: invariants broken[/red] {breached}")
            return 1
        self.console.print(f"verify: every invariant holds; the city stopped at "
                           f"{self.stopped:%Y-%m-%d %H:%M:%S} (`xingcheng up` resumes it)")
        return 0


def _open(opens: str, closes: str, at: str) -> bool:
    """Whether hours HH:MM-HH:MM (closing after midnight when earlier) include `at`."""
    return opens <= at < closes if opens < closes else at >= opens or at < closes


def up(settings: UpSettings, console: Console | None = None) -> int:
    console = console or Console()
    try:
        city = LivingCity(settings, console)
    except ScenarioError as exc:
        console.print(f"[red]harness error:[/red] {exc}")
        return 2
    try:
        city.open()
        city.tell()
        city.live()
    except KeyboardInterrupt:
        console.print("stopping: the crowd, the mall, the payer")
    except (HarnessError, PrometheusError, ScenarioError, OSError) as exc:
        console.print(f"[red]harness error:[/red] {exc}")
        city.close()
        return 2
    return city.close()
