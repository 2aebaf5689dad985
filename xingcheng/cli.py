"""`xingcheng` subcommands.  Each is thin: it parses options and calls the part it fronts."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from shared.clock import Clock
from xingcheng.database_option import DATABASE, EXISTING_DATABASE, engine_options
from xingcheng.load_option import load_options


class ClockParam(click.ParamType):
    name = "INSTANT[@SPEED]"

    def convert(self, value, param, ctx) -> Clock:
        if isinstance(value, Clock):
            return value
        try:
            return Clock.parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class SinceParam(click.ParamType):
    name = "UNIX_SECONDS|INSTANT"

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, float):
            return value
        try:
            return Clock.parse_since(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def clock_options(command):
    """--clock and --since, alike on every process of a run."""
    command = click.option(
        "--since", type=SinceParam(), default=None,
        help="The real instant (Unix seconds or ISO 8601) at which --clock's time was its "
             "start. Default: the anchor stored with the database for the same --clock, so "
             "a restart resumes; else now.")(command)
    return click.option(
        "--clock", type=ClockParam(), default=None,
        help="Run on simulated time, e.g. 2026-11-27T21:00+08:00@30 (30x faster).")(command)


def anchored(clock: Clock | None, since: float | None) -> Clock:
    if since is None:
        return clock or Clock()
    if clock is None:
        raise click.UsageError("--since anchors a simulated clock: give --clock too")
    clock.since = since
    return clock


def logging_to_stderr() -> None:
    """Log lines on stderr, every one through the masking filter."""
    from shared.masking import mask_log_handlers

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    mask_log_handlers()


# Connections the kernel holds for a server until it accepts them.  aiohttp's 128 overflowed
# at the flash sale's spike (4,000 hunters connecting within two seconds): the kernel dropped
# 1,521 handshakes, whose clients tried again 1, 3, 7 s later, a login p95 of 5.7 s of which
# the mall saw 0.1 s.  2048 is gunicorn's default (the kernel caps it at net.core.somaxconn).
LISTEN_BACKLOG = 2048

_DURATION = re.compile(r"^([0-9]{1,7})([dhm])$")
_DURATION_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
_LONGEST = timedelta(days=100 * 366)   # further back than that the calendar runs out


class DurationParam(click.ParamType):
    """A span such as 365d, 12h or 30m: the units a retention period is spoken of in."""

    name = "DURATION"

    def convert(self, value, param, ctx) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = _DURATION.match(value.strip())
        if match is None or int(match[1]) == 0:
            self.fail(f"{value!r} is not a positive duration like 365d, 12h or 30m", param, ctx)
        span = timedelta(**{_DURATION_UNITS[match[2]]: int(match[1])})
        if span > _LONGEST:
            self.fail(f"{value!r} is longer than 100 years", param, ctx)
        return span


def _on_mall(db_path: Path, use: Callable[[Any], Awaitable[Any]]) -> Any:
    """Open the mall's services on a database file (no server), run `use`, close."""
    from mall.app import open_services
    from mall.config import MallConfig
    from mall.metrics import MallMetrics

    async def run() -> Any:
        services = await open_services(MallConfig(db_path=db_path), MallMetrics())
        try:
            return await use(services)
        finally:
            await services.db.close()

    return asyncio.run(run())


def _stopped_as_by_ctrl_c(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """SIGTERM (a CI job cancelled, `kill`, `timeout`) stops a harness command as Ctrl-C
    does: its processes stopped, its databases dropped, exit 130.  By default Python dies
    at once and leaves the malls, the payer and the load generator running."""
    signal.signal(signal.SIGTERM, _stopped_as_by_ctrl_c)


@click.group()
@click.version_option(package_name="xingcheng")
def main() -> None:
    """Xingcheng (星城): a staging city for Changsha mall mini-programs."""


@main.command()
@click.option("--db", "db_path", type=DATABASE, default="xingcheng.db", show_default=True,
              help="The mall's database: a SQLite file, or a postgresql:// URL.")
@click.option("--pool-size", type=click.IntRange(1, 500), default=10, show_default=True,
              help="PostgreSQL: connections in each process's pool.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes serving the port (SO_REUSEPORT), restarted when one dies.")
@click.option("--redis", "redis_url", metavar="URL",
              help="Share risk-control limits among processes through Redis (e.g. "
                   "redis://127.0.0.1:6379/0); without it each process keeps its own.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@clock_options
@click.option("--payer", "payer_url", metavar="URL",
              help="The payer's base URL (`xingcheng paysandbox`, or WeChat Pay).")
@click.option("--payer-keys", type=click.Path(dir_okay=False, path_type=Path),
              help="The merchant account's keyring shared with the payer (made if missing).")
@click.option("--order-ttl", type=click.FloatRange(min=1), default=900, show_default=True,
              help="Simulated seconds an unpaid order holds its stock.")
@click.option("--no-access-log", is_flag=True, help="Do not log each request.")
@click.option("--shed-target-ms", type=click.FloatRange(min=0.1), default=10.0,
              show_default=True,
              help="Load shedding: refuse requests (503, Retry-After) while they have waited "
                   "longer than this ...")
@click.option("--shed-interval-ms", type=click.FloatRange(min=1), default=200.0,
              show_default=True, help="... for a whole interval this long (CoDel's rule).")
@click.option("--no-shedding", is_flag=True,
              help="Serve every request however late (to measure what shedding spares).")
@click.option("--risk-rules", type=click.Path(dir_okay=False, path_type=Path),
              help="Risk-control rules (rate limits) instead of mall/data/risk_rules.toml.")
@click.option("--membership", type=click.Path(dir_okay=False, path_type=Path),
              help="Member levels and points instead of mall/data/membership.toml.")
@click.option("--experiments", type=click.Path(dir_okay=False, path_type=Path),
              help="A/B experiments instead of mall/data/experiments.toml.")
@click.option("--faults", "faults_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Misbehave on purpose with this fault profile (rehearsals only).")
def serve(db_path: Path | str, pool_size: int, workers: int, redis_url: str | None,
          host: str, port: int,
          clock: Clock | None,
          since: float | None,
          payer_url: str | None, payer_keys: Path | None, order_ttl: float,
          no_access_log: bool, shed_target_ms: float, shed_interval_ms: float,
          no_shedding: bool,
          risk_rules: Path | None, membership: Path | None, experiments: Path | None,
          faults_file: Path | None) -> None:
    """Run the mall."""
    clock = anchored(clock, since)
    if (payer_url is None) != (payer_keys is None):
        raise click.UsageError("--payer and --payer-keys go together")
    if shed_interval_ms < shed_target_ms:
        raise click.UsageError("--shed-interval-ms must be at least --shed-target-ms")
    from mall import workers as worker_processes
    metrics_folder = worker_processes.prepare_metrics_folder() if workers > 1 else None
    from aiohttp import web

    from mall.access_log import JsonAccessLogger
    from mall.app import create_app
    from mall.config import MallConfig
    logging_to_stderr()
    from mall.experiments import ExperimentsError, load_experiments
    from mall.faults import FaultProfileError, load_profile
    from mall.member_levels import MembershipRulesError, load_membership
    from mall.risk_control import RiskRulesError, load_rules
    from mall.routes import route_names

    faults = _read_or_refuse(lambda path: load_profile(path, route_names()), faults_file,
                             FaultProfileError, "fault profile")
    _read_or_refuse(load_rules, risk_rules, RiskRulesError, "risk rules")
    _read_or_refuse(load_membership, membership, MembershipRulesError, "membership file")
    _read_or_refuse(load_experiments, experiments, ExperimentsError, "experiments")
    config = MallConfig(db_path=db_path, pool_size=pool_size, redis_url=redis_url, clock=clock,
                        resume_clock=since is None, order_ttl_seconds=order_ttl,
                        access_log=not no_access_log,
                        faults=faults, payer_url=payer_url, payer_keys=payer_keys,
                        shed_target_seconds=None if no_shedding else shed_target_ms / 1000,
                        shed_interval_seconds=shed_interval_ms / 1000, risk_rules=risk_rules,
                        membership=membership, experiments=experiments)

    def run_mall(worker: int = 0) -> None:
        own = dataclasses.replace(config, sweeps_database=worker == 0)
        web.run_app(create_app(own), host=host, port=port, print=None,
                    backlog=LISTEN_BACKLOG, reuse_port=workers > 1,
                    access_log_class=JsonAccessLogger,
                    access_log=logging.getLogger("mall.access") if config.access_log else None)

    if workers == 1:
        run_mall()
        return
    try:
        worker_processes.supervise(workers, run_mall)
    finally:
        worker_processes.remove_metrics_folder(metrics_folder)


def _read_or_refuse(load, path: Path | None, error: type[Exception], what: str):
    """A mall file given on the command line, read now, so a bad one is a usage error that
    names its field rather than a traceback from the app factory."""
    if path is None:
        return None
    try:
        return load(path)
    except error as exc:
        raise click.UsageError(f"bad {what}: {exc}") from exc


@main.command()
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              default="paysandbox.db", show_default=True, help="The payer's own database.")
@click.option("--keys", "keys_path", type=click.Path(dir_okay=False, path_type=Path),
              default="payment-keys.json", show_default=True,
              help="The merchant account's keyring, shared with the malls (made if missing).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, type=click.IntRange(0, 65535))
@clock_options
def paysandbox(db_path: Path, keys_path: Path, host: str, port: int, clock: Clock | None,
               since: float | None) -> None:
    """Run the payment sandbox: WeChat Pay's side, as a process of its own."""
    from aiohttp import web

    from paysandbox.app import PayerConfig, create_app

    logging_to_stderr()
    try:
        app = create_app(PayerConfig(db_path, keys_path, anchored(clock, since),
                                     resume_clock=since is None))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    web.run_app(app, host=host, port=port, print=None, access_log=None, backlog=LISTEN_BACKLOG)


@main.command()
@click.option("--baseline", required=True, metavar="URL", help="The baseline mall's base URL.")
@click.option("--canary", required=True, metavar="URL", help="The canary mall's base URL.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8070, show_default=True, type=click.IntRange(0, 65535))
@click.option("--share", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of customers on the canary (a stable hash of the user).")
@click.option("--store", "stores", type=click.IntRange(min=1), multiple=True,
              help="A store whose requests go to the canary (repeatable).")
@click.option("--district", "districts", multiple=True,
              help="A district whose stores go to the canary (repeatable), e.g. 岳麓区.")
@click.option("--admin-token-file", type=click.Path(dir_okay=False, path_type=Path),
              default="router-admin-token", show_default=True,
              help="The token for PUT /router/rules (made, readable by you only, if missing).")
@click.option("--audit", "audit_path", type=click.Path(dir_okay=False, path_type=Path),
              default="router-audit.jsonl", show_default=True,
              help="Every change of rules is appended here.")
@click.option("--engine", type=click.Choice(["auto", "haproxy", "python"]), default="auto",
              show_default=True,
              help="What carries the requests: HAProxy (Debian's haproxy; a fraction of the "
                   "latency), or the router's own aiohttp proxy; auto: HAProxy if installed.")
def router(baseline: str, canary: str, host: str, port: int, share: float, stores: tuple,
           districts: tuple, admin_token_file: Path, audit_path: Path, engine: str) -> None:
    """The gray router: one address in front of a baseline and a canary mall on one
    database; each request goes to a side by its store, district, customer share or a
    tester's X-Gray-Side header, and comes back marked with the side that answered."""
    import secrets

    from aiohttp import web
    from pydantic import ValidationError

    from gray.router import RouterConfig, create_app
    from gray.rules import Rules

    logging_to_stderr()
    if engine == "auto":
        engine = "haproxy" if shutil.which("haproxy") else "python"
        if engine == "python":
            logging.getLogger("gray").warning(
                "haproxy is not installed: the router's own Python proxy carries the requests "
                "(3-4x the added latency; apt-get install haproxy)")
    try:
        rules = Rules(share=share, stores=frozenset(stores), districts=frozenset(districts))
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from exc
    if not admin_token_file.exists():
        admin_token_file.touch(mode=0o600)
        admin_token_file.write_text(secrets.token_urlsafe(32) + "\n")
    config = RouterConfig(baseline=baseline, canary=canary, rules=rules,
                          admin_token=admin_token_file.read_text().strip(),
                          audit_path=audit_path, engine=engine)
    if engine == "python":
        web.run_app(create_app(config), host=host, port=port, print=None, access_log=None,
                    backlog=LISTEN_BACKLOG)
        return
    if port == 0:
        raise click.UsageError("--engine haproxy needs a --port of its own (not 0)")
    import tempfile

    # HAProxy listens on the router's address; the admin API behind it, on a socket.
    config.listen, config.workdir = (host, port), Path(tempfile.mkdtemp(prefix="gray-router-"))
    try:
        app = create_app(config)
        web.run_app(app, path=str(config.admin_socket), print=None, access_log=None)
    except (RuntimeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        shutil.rmtree(config.workdir, ignore_errors=True)


@main.command()
@click.option("--db", "db_path", type=DATABASE, default="xingcheng.db", show_default=True,
              help="The mall's database: a SQLite file, or a postgresql:// URL.")
@click.option("--operator", is_flag=True, required=True, help="Issue an operator token.")
@click.option("--name", default="ops", show_default=True, help="Operator name (audit log).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole session as JSON.")
def token(db_path: Path, operator: bool, name: str, as_json: bool) -> None:
    """Print an operator token for bootstrapping stores through the API."""
    session = _on_mall(db_path, lambda services: services.accounts.operator_token(name))
    click.echo(json.dumps(session) if as_json else session["token"])


@main.command()
@click.argument("scenario")
@click.option("--target", metavar="URL", help="Run against an already running mall.")
@click.option("--reports", type=click.Path(file_okay=False, path_type=Path),
              default="reports", show_default=True, help="Where report folders go.")
@click.option("--loadgen-port", type=click.IntRange(0, 65535), default=0,
              help="Port of the load generator's Prometheus metrics (default: any free one).")
@click.option("--baseline", metavar="BUILD",
              help="Paired run: the baseline build (default: this checkout).")
@click.option("--canary", metavar="BUILD",
              help="Paired run: the canary build, served beside the baseline under one load. "
                   "A BUILD is a checkout directory, a git ref, or a running mall's URL.")
@click.option("--canary-share", type=click.FloatRange(0.01, 0.99), default=0.5,
              show_default=True, help="Share of customers sent to the canary.")
@click.option("--canary-faults", type=click.Path(dir_okay=False, path_type=Path),
              help="Start the canary with this fault profile (a rehearsal).")
@click.option("--prometheus", is_flag=True,
              help="Start a real Prometheus (Debian's) scraping the run; its storage stays in "
                   "the report folder, and the gate is judged from it too.")
@click.option("--kill", "kills", multiple=True, metavar="WHO@SECONDS[+DOWN]",
              help="Crash rehearsal: SIGKILL baseline, canary or payer that many seconds "
                   "into the load and start it again after DOWN seconds (2); repeatable.")
@click.option("--rate-factor", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Scale the scenario's arrival rates (overload and capacity experiments).")
@click.option("--serve-arg", "serve_args", multiple=True, metavar="ARG",
              help="One more argument for every mall the run starts (repeatable), e.g. "
                   "--serve-arg=--no-shedding for an experiment without shedding.")
@click.option("--pin/--no-pin", default=True, show_default=True,
              help="Give each mall started a core per process (its --workers), and the load, "
                   "payer and harness the others, where the machine has enough cores; "
                   "--no-pin shares them.")
@engine_options
@load_options
def run(scenario: str, target: str | None, reports: Path, loadgen_port: int,
        baseline: str | None, canary: str | None, canary_share: float,
        canary_faults: Path | None, prometheus: bool, kills: tuple[str, ...],
        rate_factor: float, serve_args: tuple[str, ...], pin: bool, engine: str,
        postgres_server: str, load) -> None:
    """Run a scenario (a shipped name such as smoke, or a file).

    Single run: exit 0 pass, 1 fail.  Paired run (--canary): exit 0 promote, 1 rollback,
    3 hold.  Exit 2 on a harness error, 130 when interrupted (Ctrl-C or SIGTERM: processes
    stopped, databases dropped, no verdict)."""
    from orchestration.databases import Databases
    from orchestration.run import RunSettings
    from orchestration.run import run as run_scenario

    stop_on_sigterm()

    sys.exit(run_scenario(RunSettings(
        scenario, target, reports, loadgen_port, baseline=baseline, canary=canary,
        canary_share=canary_share, canary_faults=canary_faults, prometheus=prometheus,
        kills=kills, rate_factor=rate_factor, serve_args=serve_args, pin=pin,
        databases=Databases(engine, postgres_server), load=load)))


@main.command()
@click.option("--at", metavar="HH:MM|INSTANT|SCENARIO",
              help="Where the simulated clock starts: a time on the scenario's day, an ISO "
                   "8601 instant, or a peak by name (late-night, after-school, ...).  Default: "
                   "the scenario's start, or where the folder's city stopped.")
@click.option("--scenario", default="late-night", show_default=True,
              help="The city, persona mix and staff of the crowd (a shipped name or a file).")
@click.option("--speed", type=click.FloatRange(0.01, 3600), default=1.0, show_default=True,
              help="Simulated seconds per real second.")
@click.option("--rate-factor", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Scale the crowd.")
@click.option("--quiet-city", is_flag=True, help="The mall with no background crowd.")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              default="xingcheng-city", show_default=True,
              help="Where the city's databases, logs and clock are kept between `up`s.")
@click.option("--fresh", is_flag=True, help="Start the folder's city over.")
@click.option("--prometheus/--no-prometheus", default=True, show_default=True,
              help="A real Prometheus (Debian's, when installed) scraping the mall and crowd.")
@click.option("--serve-arg", "serve_args", multiple=True, metavar="ARG",
              help="One more argument for the mall (repeatable), e.g. --serve-arg=--workers=2.")
@engine_options
def up(at: str | None, scenario: str, speed: float, rate_factor: float, quiet_city: bool,
       folder: Path, fresh: bool, prometheus: bool, serve_args: tuple[str, ...], engine: str,
       postgres_server: str) -> None:
    """Bring the simulated city to life until Ctrl-C: the payer, the mall and a crowd that
    follows the city's curve with no end.  Ctrl-C stops them, runs `verify` and exits 0 when
    every invariant holds; `xingcheng up` again resumes the same city and clock."""
    from orchestration.databases import Databases
    from orchestration.living_city import UpSettings
    from orchestration.living_city import up as bring_up

    stop_on_sigterm()
    # Ctrl-C even where the shell started it with SIGINT ignored (`xingcheng up &` in a
    # script): Python keeps an inherited "ignore" and the city would never stop by it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(bring_up(UpSettings(folder, scenario, at, speed, rate_factor, quiet_city, fresh,
                                 prometheus, serve_args, Databases(engine, postgres_server))))


@main.command()
@click.option("--db", "db_path", type=DATABASE, default="xingcheng.db", show_default=True,
              help="The mall's database: a SQLite file, or a postgresql:// URL.")
@click.option("--grace", type=click.FloatRange(min=0), default=300, show_default=True,
              help="Mall-clock seconds the sweeper may be late closing an unpaid order.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def verify(db_path: Path, grace: float, as_json: bool) -> None:
    """Check the mall's invariants on its database (read only): exit 0 all hold, 1 a breach
    (its rows named), 2 the file cannot be verified."""
    from dataclasses import asdict

    from rich.console import Console

    from mall.verification import NotVerifiable
    from mall.verification import verify as check

    console = Console()
    try:
        findings = asyncio.run(check(db_path, grace))
    except NotVerifiable as exc:
        Console(stderr=True).print(f"[red]cannot verify:[/red] {exc}", soft_wrap=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps([asdict(f) for f in findings], ensure_ascii=False, indent=1))
    else:
        for finding in findings:
            mark = "[green]ok[/green]  " if finding.holds else "[red]FAIL[/red]"
            console.print(f"{mark} {finding.name}: {finding.breaches} breaches - "
                          f"{finding.meaning}", soft_wrap=True)
            for row in finding.rows:
                console.print(f"       {row}", soft_wrap=True, markup=False)
    sys.exit(0 if all(f.holds for f in findings) else 1)


@main.command()
@click.argument("scenario")
@click.option("--reports", type=click.Path(file_okay=False, path_type=Path),
              default="reports", show_default=True)
@click.option("--start", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="The first step's arrival rate, as a multiple of the scenario's.")
@click.option("--growth", type=click.FloatRange(min=1.05), default=1.5, show_default=True,
              help="Each step's rate over the previous one's.")
@click.option("--steps", type=click.IntRange(1, 30), default=8, show_default=True,
              help="At most this many steps.")
@click.option("--serve-arg", "serve_args", multiple=True, metavar="ARG",
              help="One more argument for the mall of every step (repeatable), e.g. "
                   "--serve-arg=--faults=scenarios/faults/heavy.toml.")
@engine_options
@load_options
def capacity(scenario: str, reports: Path, start: float, growth: float, steps: int,
             serve_args: tuple[str, ...], engine: str, postgres_server: str, load) -> None:
    """容量评估: raise the scenario's arrival rate step by step until its SLO (latency and
    error thresholds) breaks; report the highest sessions/s held.  Exit 0 found, 1 not even
    the first step held, 2 harness error."""
    from rich.console import Console

    from orchestration.capacity import capacity as search

    stop_on_sigterm()
    sys.exit(search(scenario, reports, Console(), start, growth, steps, serve_args, engine,
                    postgres_server, load))


@main.command()
@click.option("--baseline", default=".", show_default=True, metavar="BUILD",
              help="The build in service: a checkout or a git ref.")
@click.option("--canary", required=True, metavar="BUILD", help="The build to roll out.")
@click.option("--scenario", default="release", show_default=True,
              help="The load the rollout runs under (a shipped name or a file).")
@click.option("--by", type=click.Choice(["share", "store", "district"]), default="share",
              show_default=True, help="What a step puts on the canary.")
@click.option("--steps", default="5,25,50,100", show_default=True,
              help="The canary's part of the city at each step, in percent.")
@click.option("--canary-faults", type=click.Path(dir_okay=False, path_type=Path),
              help="Start the canary with this fault profile (a rehearsal).")
@click.option("--reports", type=click.Path(file_okay=False, path_type=Path),
              default="reports", show_default=True)
@engine_options
@load_options
def rollout(baseline: str, canary: str, scenario: str, by: str, steps: str,
            canary_faults: Path | None, reports: Path, engine: str,
            postgres_server: str, load) -> None:
    """灰度发布: both builds on one database behind the gray router, the scenario's load
    through it, the canary's part widened step by step while the release gate promotes,
    or all traffic back to the baseline at once when it says rollback.  Exit 0 promoted,
    1 rolled back, 3 held, 2 harness error, 130 interrupted."""
    from rich.console import Console

    from orchestration.rollout import rollout as run_rollout

    stop_on_sigterm()
    try:
        percents = [int(part) for part in steps.split(",") if part.strip()]
    except ValueError as exc:
        raise click.BadParameter("comma-separated whole percentages, e.g. 5,25,50,100",
                                 param_hint="--steps") from exc
    from orchestration.databases import Databases

    sys.exit(run_rollout(scenario, baseline, canary, by, percents, reports, Console(),
                         canary_faults, Databases(engine, postgres_server), load))


@main.command()
@click.option("--master", required=True, metavar="HOST:PORT",
              help="The master of a run started with --master-bind HOST:PORT.")
def loadgen(master: str) -> None:
    """A load worker for a run on another machine: Locust's worker with this harness's
    journeys.  It takes the scenario, its share of the schedule and every setting from the
    master, builds the same city from the scenario's seed, and starts nothing else; it ends
    with the run."""
    from orchestration.load_generator import worker_command

    host, _, port = master.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter("give HOST:PORT", param_hint="--master")
    command = worker_command(master)
    os.execv(command[0], command)


@main.command()
@click.option("--baseline", default=".", show_default=True, metavar="BUILD",
              help="The build in service: a checkout, a git ref or a URL.")
@click.option("--canary", required=True, metavar="BUILD", help="The build to roll out.")
def compat(baseline: str, canary: str) -> None:
    """Compatibility before traffic: the canary's API and migrations against the baseline's.
    Exit 0 compatible, 1 breaks (each named), 2 a build cannot be read."""
    from orchestration import builds
    from orchestration.compatibility import check
    from orchestration.run import CACHE

    try:
        worktrees = CACHE / "builds"
        breaks = check(builds.resolve(baseline, worktrees), builds.resolve(canary, worktrees))
    except (builds.BuildError, OSError, ValueError) as exc:
        click.echo(f"harness error: {exc}", err=True)
        sys.exit(2)
    for found in breaks:
        click.echo(f"BREAK {found}")
    click.echo(f"{len(breaks)} breaks" if breaks else "compatible: no break found")
    sys.exit(1 if breaks else 0)


@main.command()
@click.argument("report_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--prometheus", metavar="URL",
              help="Read the run's metrics from this Prometheus server instead of the "
                   "recorded files.")
@click.option("--scenario", help="Judge with this scenario's [gate] settings instead.")
def gate(report_dir: Path, prometheus: str | None, scenario: str | None) -> None:
    """Judge a recorded paired run again: exit 0 promote, 1 rollback, 3 hold, 2 error."""
    from monitoring.regate import regate

    sys.exit(regate(report_dir, prometheus, scenario))


@main.command()
@click.argument("report_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--experiment", "key", metavar="KEY", help="Only this experiment.")
@click.option("--level", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True,
              help="Confidence level of the intervals.")
@click.option("--min-sessions", type=click.IntRange(min=2), default=100, show_default=True,
              help="Fewer sessions (paying sessions, for the basket) in an arm: inconclusive.")
@click.option("--definitions", type=click.Path(dir_okay=False, path_type=Path),
              help="The experiments file the malls ran with (serve --experiments) instead of "
                   "mall/data/experiments.toml.")
@click.option("--json", "as_json", is_flag=True, help="Print experiment.json instead.")
def experiment(report_dir: Path, key: str | None, level: float, min_sessions: int,
               definitions: Path | None, as_json: bool) -> None:
    """A/B experiments of a recorded run: each arm's conversion, basket and GMV per session
    against the control, the effect with its interval and a p-value; experiment.json is
    written into the folder.  Exit 0 reported, 2 the folder cannot be used."""
    from mall.experiments import SHIPPED
    from monitoring.experiment_report import experiment as report

    sys.exit(report(report_dir, key, level, min_sessions, definitions or SHIPPED, as_json))


@main.group()
def privacy() -> None:
    """Personal data under PIPL (see docs/privacy.md)."""


@privacy.command()
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE,
              help="The mall's database: a SQLite file, or a postgresql:// URL.")
@click.option("--older-than", required=True, type=DurationParam(),
              help="Retention period: anonymize customers inactive for longer, e.g. 365d.")
@click.option("--dry-run", is_flag=True, help="Only count them; write nothing.")
@click.option("--name", default="ops", show_default=True, help="Operator name (audit log).")
def purge(db_path: Path, older_than: timedelta, dry_run: bool, name: str) -> None:
    """Anonymize customers inactive past the retention period; orders and their totals stay.
    Store staff, operators and customers with an order under way are kept.  Each run is
    one `privacy.purge` row in the audit log."""
    result = _on_mall(db_path, lambda services: services.personal_data.purge(
        older_than, name, dry_run))
    if dry_run:
        click.echo(f"dry run: {result['accounts']} customer account(s) inactive since before "
                   f"{result['cutoff']} would be anonymized; nothing written")
        return
    click.echo(f"anonymized {result['accounts']} customer account(s) inactive since before "
               f"{result['cutoff']} ({result['addresses_removed']} address(es) removed, "
               f"{result['addresses_anonymized']} kept for their orders); audited as "
               "privacy.purge")


def _add_harness_commands() -> None:
    from simulator.commands import city

    main.add_command(city)


_add_harness_commands()

if __name__ == "__main__":
    main()
