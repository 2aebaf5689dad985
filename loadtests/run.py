"""`xingcheng run SCENARIO`: the main job.

Generate (or reuse) the scenario's city, start the mall on the scenario's simulated clock,
run Locust headless with the city's sessions, show live progress, then judge the
thresholds and write `reports/<scenario>-<timestamp>/`.  Exit 0 when every threshold
holds, 1 when any fails, 2 when the harness itself failed or was misused."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.live import Live
from rich.table import Table

from mall.clock import SHANGHAI
from simulator.city import build_city
from simulator.loader import load

from .report import evaluate, write
from .scenario import Scenario, ScenarioError, load_scenario
from .summary import Observed

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
CACHE = Path(os.environ.get("XINGCHENG_CACHE", ".xingcheng-cache"))
PASSED, FAILED, HARNESS = 0, 1, 2


class HarnessError(Exception):
    """The run could not be carried out (not a verdict on the mall)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def scrape(url: str) -> dict[str, float]:
    """A Prometheus text page as {'name{label="v",...}': value}."""
    samples = {}
    for family in text_string_to_metric_families(fetch(url)):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return samples


def city_database(scenario: Scenario, console: Console) -> Path:
    """The scenario's city as a pristine database, generated once per preset and seed."""
    spec = scenario.spec.city
    cached = CACHE / "cities" / f"{spec.preset}-{spec.seed}.db"
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        with console.status(f"generating the {spec.preset} city (seed {spec.seed})"):
            asyncio.run(load(build_city(scenario.preset, spec.seed), partial))
        partial.rename(cached)
    return cached


def wait_ready(base: str, process: subprocess.Popen | None, seconds: float = 30) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise HarnessError(f"the mall exited with {process.returncode} while starting")
        try:
            return json.loads(fetch(f"{base}/readyz", timeout=2))
        except (OSError, ValueError):
            time.sleep(0.2)
    raise HarnessError(f"{base} did not become ready in {seconds:.0f}s")


def check_city(base: str, scenario: Scenario) -> None:
    """Against an external mall: its store 1 must be the scenario city's store 1."""
    expected = build_city(scenario.preset, scenario.spec.city.seed).stores[0]
    try:
        store = json.loads(fetch(f"{base}/api/v1/stores/1"))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{base} does not serve store 1: {exc}") from exc
    if store.get("name") != expected.name:
        raise HarnessError(f"{base} does not hold the {scenario.spec.city.preset} city with "
                           f"seed {scenario.spec.city.seed} (store 1 is {store.get('name')!r})")


def live_table(scenario: Scenario, load: dict[str, float], mall: dict[str, float],
               elapsed: float) -> Table:
    spec = scenario.spec
    sim = load.get("loadgen_simulated_time_seconds")
    clock = datetime.fromtimestamp(sim, SHANGHAI).strftime("%a %H:%M:%S") if sim else "-"
    table = Table(title=f"xingcheng run {scenario.name}", show_header=False)
    table.add_row("simulated clock", f"{clock}  ({spec.window.speed:g}x)")
    table.add_row("elapsed", f"{elapsed:5.0f} s of {spec.window.real_seconds:.0f} s")
    table.add_row("sessions/s target | achieved",
                  f"{load.get('loadgen_target_sessions_per_second', 0):6.1f} | "
                  f"{load.get('loadgen_achieved_sessions_per_second', 0):6.1f}")
    started = sum(v for k, v in load.items() if k.startswith("loadgen_sessions_started_total"))
    table.add_row("sessions started | late | walking",
                  f"{started:.0f} | {load.get('loadgen_sessions_late_total', 0):.0f} | "
                  f"{load.get('loadgen_sessions_in_flight', 0):.0f}")
    table.add_row("p95 (all steps)", f"{_p95(load) * 1000:.0f} ms")
    errors = sum(v for k, v in load.items() if k.startswith("loadgen_requests_total")
                 and ('status_class="5xx"' in k or 'status_class="error"' in k))
    table.add_row("server errors", f"{errors:.0f}")
    orders = {c: mall.get(f'mall_orders_total{{change="{c}"}}', 0)
              for c in ("created", "paid", "completed")}
    table.add_row("orders created | paid | completed",
                  " | ".join(f"{v:.0f}" for v in orders.values()))
    table.add_row("GMV", f"¥{mall.get('mall_gmv_yuan_total', 0):,.2f}")
    return table


def _p95(load: dict[str, float]) -> float:
    """p95 over all steps from the client histogram's cumulative buckets."""
    buckets: dict[float, float] = {}
    for key, value in load.items():
        if key.startswith("loadgen_request_duration_seconds_bucket"):
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


def run(name: str, target: str | None = None, reports: Path = Path("reports"),
        console: Console | None = None, loadgen_port: int = 0) -> int:
    console = console or Console()
    try:
        scenario = load_scenario(name)
    except (ScenarioError, ValueError) as exc:
        console.print(f"[red]scenario error:[/red] {exc}")
        return HARNESS
    stamp = datetime.now(SHANGHAI).strftime("%Y%m%d-%H%M%S")
    report_dir = reports / f"{scenario.name}-{stamp}"
    report_dir.mkdir(parents=True, exist_ok=True)
    mall_process = None
    try:
        if target is None:
            db = report_dir / "mall.db"
            shutil.copyfile(city_database(scenario, console), db)
            port = free_port()
            window = scenario.spec.window
            clock = f"{window.start.isoformat()}@{window.speed:g}"
            with (report_dir / "mall.log").open("w") as mall_log:
                mall_process = subprocess.Popen(
                    [sys.executable, "-m", "xingcheng.cli", "serve", "--db", str(db), "--port",
                     str(port), "--clock", clock, "--no-access-log"],
                    stdout=mall_log, stderr=subprocess.STDOUT)
            target = f"http://127.0.0.1:{port}"
            wait_ready(target, mall_process)
        else:
            target = target.rstrip("/")
            wait_ready(target, None, 10)
            check_city(target, scenario)
        verdict = _drive(scenario, target, report_dir, console, loadgen_port or free_port())
    except HarnessError as exc:
        console.print(f"[red]harness error:[/red] {exc}")
        console.print(f"report folder: {report_dir}")
        return HARNESS
    finally:
        if mall_process is not None:
            mall_process.terminate()
            try:
                mall_process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                mall_process.kill()
    console.print(f"report: {report_dir}/summary.md")
    failed = [r["threshold"] for r in verdict["thresholds"] if not r["passed"]]
    if failed:
        console.print(f"[red]FAIL[/red] {scenario.name}: {'; '.join(failed)}")
        return FAILED
    console.print(f"[green]PASS[/green] {scenario.name}: all {len(verdict['thresholds'])} "
                  "thresholds hold")
    return PASSED


def _drive(scenario: Scenario, target: str, report_dir: Path, console: Console,
           metrics_port: int) -> dict:
    spec = scenario.spec
    console.print(f"mall {target}/metrics, load generator http://127.0.0.1:{metrics_port}"
                  f"/metrics, report {report_dir}")
    limit = spec.window.real_seconds + 3 * spec.load.drain_seconds + 120
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
               "--host", target, "--users", str(1 + spec.load.staff), "--spawn-rate", "1000",
               "--run-time", f"{int(limit)}s", "--stop-timeout", "5",
               "--csv", str(report_dir / "locust"), "--only-summary",
               "--exit-code-on-error", "0", "--loglevel", "WARNING",
               "--scenario", str(scenario.path), "--report-dir", str(report_dir),
               "--metrics-port", str(metrics_port)]
    started = time.monotonic()
    with (report_dir / "loadgen.log").open("w") as log:
        locust = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        mall: dict[str, float] = {}
        with Live(console=console, auto_refresh=False,
                  transient=not console.is_terminal) as live:
            last_print = 0.0
            while locust.poll() is None:
                time.sleep(1)
                try:
                    load, mall = scrape(f"http://127.0.0.1:{metrics_port}/metrics"), \
                        scrape(f"{target}/metrics")
                except (OSError, ValueError):
                    continue
                elapsed = time.monotonic() - started
                table = live_table(scenario, load, mall, elapsed)
                if console.is_terminal:
                    live.update(table, refresh=True)
                elif elapsed - last_print >= 10:
                    console.print(table)
                    last_print = elapsed
    if locust.returncode != 0:
        raise HarnessError(f"locust exited with {locust.returncode}; see "
                           f"{report_dir / 'loadgen.log'}")
    client_file = report_dir / "client.json"
    if not client_file.exists():
        raise HarnessError(f"the load generator wrote no {client_file.name}; see loadgen.log")
    client = json.loads(client_file.read_text())
    if not client["finished"]:
        raise HarnessError("the load generator stopped before its schedule ended")
    try:
        mall = scrape(f"{target}/metrics")
    except OSError as exc:
        raise HarnessError(f"the mall stopped answering: {exc}") from exc
    observed = Observed(client, mall)
    facts = {"window": f"{spec.window.start.isoformat()} - {spec.window.end.isoformat()}",
             "speed": spec.window.speed, "real_seconds": spec.window.real_seconds,
             "city": f"{spec.city.preset}/seed {spec.city.seed}", "target": target,
             "wall_seconds": round(time.monotonic() - started, 1)}
    return write(report_dir, scenario, observed, evaluate(scenario, observed), facts)
