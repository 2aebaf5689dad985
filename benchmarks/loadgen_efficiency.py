"""Is the load generator the bottleneck?  Requests per CPU-second of the journey users
(loadtests/locustfile.py, open workload, real journeys) beside a bare FastHttpUser loop
hitting one cheap endpoint, against the same mall in the same run.  Target: >= 60%.

The mall runs on core 0, each Locust run on core 1; a run's CPU time is read from the
child's rusage, so a generator that idles between arrivals is not penalised.

    python benchmarks/loadgen_efficiency.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.60
FIVE_XX = 'status_class="5xx"'

BARE = textwrap.dedent("""
    from locust import FastHttpUser, constant, task

    class Bare(FastHttpUser):
        wait_time = constant(0)

        @task
        def store(self):
            self.client.get("/api/v1/stores/1", name="store")
""")

SCENARIO = textwrap.dedent("""
    name = "efficiency"
    [window]
    day = "weekday"
    start = "2026-11-27T22:10:00+08:00"
    end = "2026-11-27T22:{end_minute:02d}:00+08:00"
    speed = 40
    [city]
    preset = "small"
    seed = 7
    daily_orders = 30_000
    [load]
    staff = 4
    drain_seconds = 5
    [thresholds]
    "http_5xx" = ["count==0"]
""")


def cpu_seconds_of(command: list[str], env: dict) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def total_requests(stats_csv: Path) -> int:
    with stats_csv.open() as handle:
        for row in csv.DictReader(handle):
            if row["Name"] == "Aggregated":
                return int(row["Request Count"])
    raise ValueError("no Aggregated row")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    env = {**os.environ, "XINGCHENG_CACHE": str(ROOT / ".xingcheng-cache")}
    def pinned(core: str) -> list[str]:
        return ["taskset", "-c", core] if shutil.which("taskset") else []

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        sys.path.insert(0, str(ROOT))
        from loadtests.run import city_database, free_port, wait_ready
        from loadtests.scenario import load_scenario

        scenario_file = tmp / "efficiency.toml"
        scenario_file.write_text(SCENARIO.format(end_minute=10 + args.seconds * 40 // 60))
        scenario = load_scenario(str(scenario_file))
        os.environ["XINGCHENG_CACHE"] = env["XINGCHENG_CACHE"]
        from rich.console import Console

        db = tmp / "mall.db"
        shutil.copyfile(city_database(scenario, Console(stderr=True)), db)
        port = free_port()
        mall = subprocess.Popen([*pinned("0"), sys.executable, "-m",
                                 "xingcheng.cli", "serve", "--db", str(db), "--port", str(port),
                                 "--clock", "2026-11-27T22:10+08:00@40", "--no-access-log"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        host = f"http://127.0.0.1:{port}"
        try:
            wait_ready(host, mall)
            locust = [*pinned("1"), sys.executable, "-m", "locust",
                      "--headless", "--host", host, "--only-summary", "--loglevel", "ERROR",
                      "--exit-code-on-error", "0"]
            (tmp / "bare.py").write_text(BARE)
            bare_cpu = cpu_seconds_of([*locust, "-f", str(tmp / "bare.py"), "--users", "50",
                                       "--spawn-rate", "50", "--run-time", f"{args.seconds}s",
                                       "--csv", str(tmp / "bare")], env)
            bare = total_requests(tmp / "bare_stats.csv")
            started = time.monotonic()
            journey_cpu = cpu_seconds_of([*locust, "-f", str(ROOT / "loadtests/locustfile.py"),
                                          "--users", "5", "--spawn-rate", "5", "--run-time",
                                          f"{args.seconds * 4}s", "--scenario",
                                          str(scenario_file), "--report-dir", str(tmp),
                                          "--csv", str(tmp / "journeys")], env)
            wall = time.monotonic() - started
            journeys = total_requests(tmp / "journeys_stats.csv")
            client = json.loads((tmp / "client.json").read_text())
            mall_metrics = urllib.request.urlopen(f"{host}/metrics").read().decode()
        finally:
            mall.terminate()
            mall.wait(timeout=10)
    bare_rate, journey_rate = bare / bare_cpu, journeys / journey_cpu
    print(f"{'load generator':<34} {'requests':>9} {'cpu s':>7} {'req/cpu-s':>10}")
    print(f"{'bare FastHttpUser loop (ref)':<34} {bare:>9} {bare_cpu:>7.1f} {bare_rate:>10.0f}")
    print(f"{'journey users (open workload)':<34} {journeys:>9} {journey_cpu:>7.1f} "
          f"{journey_rate:>10.0f}")
    ratio = journey_rate / bare_rate
    print(f"ratio {ratio:.0%} (target {TARGET:.0%}: {'met' if ratio >= TARGET else 'MISSED'});"
          f" journeys ran {wall:.0f}s wall, {client['sessions']['started']} sessions,"
          f" {client['sessions']['late']} late; mall 5xx series: "
          f"{mall_metrics.count(FIVE_XX)}")


if __name__ == "__main__":
    main()
