"""Is the load generator the bottleneck?  Requests per CPU-second of the journey users
(loadtests/locustfile.py, open workload, real journeys) beside a bare FastHttpUser loop
hitting one cheap endpoint, against the same mall in the same run (the bare loop before
and after the journeys; the ratio is against its mean).  Target: >= 60%.

The mall runs on core 0, each Locust run on core 1.  Both figures are taken in steady
state: the generator's CPU time is sampled from /proc twice a second and set against
Locust's own request-count history, skipping the first 10 s (imports, city, schedule) and
the last 5 s, so a generator that idles between arrivals is not penalised either.

Then what N load workers hold (`--hold`): the highest rate factor of late-night's crest
(22:00-22:40 at 40x, one minute of load) that N workers start with no session late and the
arrival curve within 3% in every 10-s window busier than 5 sessions/s, for N = 1 and 2.  A
2-core machine has no core to spare beside the mall for a second worker, so each worker is
held to the same small share of core 1 (`--worker-cpu`, a CPU quota of its own through the
cgroup cpu controller, from the moment the load begins: building the city is not what is
measured): the question is whether two such workers carry twice what one does, i.e.
whether the split scales, not what this machine's cores can drive.  The workers are
`xingcheng loadgen` processes of a run started with --master-bind/--expect-workers.

    python benchmarks/loadgen_efficiency.py [--seconds 45] [--hold [--no-ratio]]
        [--worker-cpu 0.1]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
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
            self.client.get("{path}", name="bare")
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


SKIP_HEAD, SKIP_TAIL = 10, 5


def cpu_samples(command: list[str], env: dict) -> list[tuple[float, float]]:
    """Run `command`; (unix time, CPU seconds used so far) twice a second until it exits."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ticks, samples = os.sysconf("SC_CLK_TCK"), []
    while proc.poll() is None:
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            samples.append((time.time(), (int(fields[11]) + int(fields[12])) / ticks))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
        time.sleep(0.5)
    if proc.returncode != 0:
        raise RuntimeError(f"{command} exited with {proc.returncode}")
    return samples


def steady(samples: list[tuple[float, float]], history_csv: Path) -> tuple[int, float]:
    """(requests, CPU seconds) between SKIP_HEAD s after the first request count and
    SKIP_TAIL s before the last, from Locust's history and the CPU samples."""
    with history_csv.open() as handle:
        counts = [(int(row["Timestamp"]), int(row["Total Request Count"]))
                  for row in csv.DictReader(handle) if row["Name"] == "Aggregated"]
    first, last = counts[0][0] + SKIP_HEAD, counts[-1][0] - SKIP_TAIL
    window = [c for c in counts if first <= c[0] <= last]

    def cpu_at(moment: float) -> float:
        return min(samples, key=lambda s: abs(s[0] - moment))[1]

    (t0, n0), (t1, n1) = window[0], window[-1]
    return n1 - n0, cpu_at(t1) - cpu_at(t0)


def server_errors(exposition: str) -> int:
    """5xx answers the mall counted (its request counter's 5xx series, summed)."""
    return round(sum(float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines()
                     if line.startswith("mall_http_requests_total") and FIVE_XX in line))


CREST = textwrap.dedent("""
    name = "late-night-crest"
    [window]
    day = "weekday"
    start = "2026-11-27T22:00:00+08:00"
    end = "2026-11-27T22:40:00+08:00"
    speed = 40
    [city]
    preset = "district"
    seed = 7
    daily_orders = 20_000
    [load]
    staff = 8
    max_sessions = 3000
    drain_seconds = 10
    [thresholds]
    "http_5xx" = ["count==0"]
""")
FACTORS = (0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)


class CpuQuota:
    """A cgroup of the cpu controller (v1 or v2) that holds its processes to `cores`."""

    def __init__(self, name: str, cores: float) -> None:
        v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
        if (v1 / "cpu.cfs_quota_us").exists():
            self.path = v1 / name
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.cfs_period_us").write_text("100000")
            (self.path / "cpu.cfs_quota_us").write_text(str(int(cores * 100_000)))
        elif (v2 / "cgroup.controllers").exists():
            self.path = v2 / name
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.max").write_text(f"{int(cores * 100_000)} 100000")
        else:
            raise OSError("no cgroup cpu controller to hold a worker to a share of a core")

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.2)


def held(workers: int, factor: float, cores: float, scenario: Path, tmp: Path,
         env: dict) -> dict:
    """One run of the crest at `factor` by `workers` loadgen workers, each held to `cores`."""
    from orchestration.builds import free_port

    port, metrics, reports = free_port(), free_port(), tmp / f"hold-{workers}-{factor:g}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    run = subprocess.Popen([sys.executable, "-m", "xingcheng.cli", "run", str(scenario),
                            "--rate-factor", f"{factor:g}", "--master-bind",
                            f"127.0.0.1:{port}", "--expect-workers", str(workers),
                            "--loadgen-port", str(metrics), "--reports", str(reports)],
                           env=env, **quiet)
    quotas, loads = [], []
    try:
        for _ in range(workers):
            loads.append(subprocess.Popen([*(["taskset", "-c", "1"] if shutil.which("taskset")
                                             else []), sys.executable, "-m", "xingcheng.cli",
                                           "loadgen", "--master", f"127.0.0.1:{port}"],
                                          env=env, **quiet))
        walking(f"http://127.0.0.1:{metrics}/metrics", run)
        for n, load in enumerate(loads):
            quota = CpuQuota(f"xingcheng-loadgen-{os.getpid()}-{n}", cores)
            quotas.append(quota)
            quota.add(load.pid)
        run.wait(timeout=900)
    finally:
        for process in (run, *loads):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
        for quota in quotas:
            quota.remove()
    client = json.loads(next(reports.iterdir()).joinpath("client.json").read_text())
    sessions, error = client["sessions"], client["arrival_rate_error"] or 0.0
    return {"factor": factor, "late": sessions["late"], "started": sessions["started"],
            "rate_error": error, "held": sessions["late"] == 0 and error <= 0.03,
            "per_s": max(w["target_per_s"] for w in client["arrival_windows"])}


def walking(metrics_url: str, run: subprocess.Popen) -> None:
    """Until the load's clock shows on its metrics page: every worker has built its plan
    and the first sessions are due."""
    while run.poll() is None:
        try:
            page = urllib.request.urlopen(metrics_url, timeout=2).read().decode()
            clock = [line.split()[1] for line in page.splitlines()
                     if line.startswith("loadgen_simulated_time_seconds ")]
            if clock and float(clock[0]) > 0:
                return
        except OSError:
            pass
        time.sleep(0.2)


def hold(cores: float, env: dict, lowest: float = FACTORS[0]) -> None:
    print(f"what N workers hold: late-night's crest, each worker held to {cores:g} of a core")
    print(f"{'workers':>7} {'factor':>6} {'peak/s':>7} {'started':>8} {'late':>5} "
          f"{'rate err':>8}  held")
    best: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        scenario = Path(tmp_dir) / "late-night-crest.toml"
        scenario.write_text(CREST)
        start = FACTORS.index(lowest)
        for workers in (1, 2):
            for factor in FACTORS[start:]:
                seen = held(workers, factor, cores, scenario, Path(tmp_dir), env)
                print(f"{workers:>7} {factor:>6g} {seen['per_s']:>7.1f} {seen['started']:>8} "
                      f"{seen['late']:>5} {seen['rate_error']:>8.1%}  "
                      f"{'yes' if seen['held'] else 'NO'}", flush=True)
                if not seen["held"]:
                    break
                best[workers] = factor
            start = max(FACTORS.index(best.get(workers, FACTORS[0])), 0)
    for workers in (1, 2):
        print(f"{workers} worker(s): held x{best.get(workers, 0):g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=45,
                        help="length of each run; startup (imports, city, schedule) is in it")
    parser.add_argument("--hold", action="store_true",
                        help="then what 1 and 2 load workers hold (about 15 minutes)")
    parser.add_argument("--worker-cpu", type=float, default=0.1,
                        help="the share of a core each worker may use in --hold")
    parser.add_argument("--bare-path", default="/api/v1/stores/1",
                        help="what the bare loop asks for (a catalogue page, "
                             "/api/v1/stores/1/products, shows how much of the gap is the "
                             "journeys' larger answers)")
    parser.add_argument("--start-factor", type=float, default=FACTORS[0], choices=FACTORS,
                        help="with --hold: the lowest rate factor tried (a shorter climb)")
    parser.add_argument("--no-ratio", action="store_true",
                        help="with --hold: only that, not the journeys' ratio")
    args = parser.parse_args()
    env = {**os.environ, "XINGCHENG_CACHE": str(ROOT / ".xingcheng-cache")}
    if args.no_ratio:
        sys.path.insert(0, str(ROOT))
        hold(args.worker_cpu, env, args.start_factor)
        return
    env = {**os.environ, "XINGCHENG_CACHE": str(ROOT / ".xingcheng-cache")}
    def pinned(core: str) -> list[str]:
        return ["taskset", "-c", core] if shutil.which("taskset") else []

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        sys.path.insert(0, str(ROOT))
        from loadtests.scenario import load_scenario
        from orchestration.databases import Databases
        from orchestration.run import free_port, wait_ready

        scenario_file = tmp / "efficiency.toml"
        scenario_file.write_text(SCENARIO.format(end_minute=10 + args.seconds * 40 // 60))
        scenario = load_scenario(str(scenario_file))
        os.environ["XINGCHENG_CACHE"] = env["XINGCHENG_CACHE"]
        from rich.console import Console

        db = tmp / "mall.db"
        shutil.copyfile(Databases().city(scenario, Console(stderr=True)), db)
        # The payer beside the mall, as a run starts it: customers pay through it, so the
        # journeys make the requests a run makes (a mall without one answers 503 to pay).
        clock, payer_port, port = "2026-11-27T22:10+08:00@40", free_port(), free_port()
        payer_url, keys = f"http://127.0.0.1:{payer_port}", tmp / "payment-keys.json"
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        payer = subprocess.Popen([*pinned("0"), sys.executable, "-m", "xingcheng.cli",
                                  "paysandbox", "--db", str(tmp / "paysandbox.db"), "--keys",
                                  str(keys), "--port", str(payer_port), "--clock", clock],
                                 **quiet)
        mall = None
        host = f"http://127.0.0.1:{port}"
        try:
            wait_ready(payer_url, payer)
            mall = subprocess.Popen([*pinned("0"), sys.executable, "-m", "xingcheng.cli",
                                     "serve", "--db", str(db), "--port", str(port), "--clock",
                                     clock, "--no-access-log", "--payer", payer_url,
                                     "--payer-keys", str(keys)], **quiet)
            wait_ready(host, mall)
            locust = [*pinned("1"), sys.executable, "-m", "locust",
                      "--headless", "--host", host, "--only-summary", "--loglevel", "ERROR",
                      "--exit-code-on-error", "0"]
            (tmp / "bare.py").write_text(BARE.replace("{path}", args.bare_path))

            def bare_loop() -> tuple[int, float]:
                return steady(cpu_samples([*locust, "-f", str(tmp / "bare.py"), "--users", "50",
                                           "--spawn-rate", "50", "--run-time",
                                           f"{args.seconds}s", "--csv", str(tmp / "bare")],
                                          env), tmp / "bare_stats_history.csv")

            # The reference before and after the journeys: the machine's speed drifts by
            # several percent over minutes, and the ratio is taken against their mean.
            bare = [bare_loop()]
            started = time.monotonic()
            journeys = steady(cpu_samples([*locust, "-f", str(ROOT / "loadtests/locustfile.py"),
                                           "--users", "5", "--spawn-rate", "5", "--run-time",
                                           f"{args.seconds * 3}s", "--scenario",
                                           str(scenario_file), "--report-dir", str(tmp),
                                           "--payer-host", payer_url, "--payer-sides",
                                           "baseline",
                                           "--csv", str(tmp / "journeys")], env),
                              tmp / "journeys_stats_history.csv")
            wall = time.monotonic() - started
            bare.append(bare_loop())
            client = json.loads((tmp / "client.json").read_text())
            mall_metrics = urllib.request.urlopen(f"{host}/metrics").read().decode()
        finally:
            for process in (mall, payer):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=10)
    journey_rate = journeys[0] / journeys[1]
    bare_rate = sum(n / cpu for n, cpu in bare) / len(bare)
    print(f"steady state (first {SKIP_HEAD} s and last {SKIP_TAIL} s of each run left out)")
    print(f"{'load generator':<34} {'requests':>9} {'cpu s':>7} {'req/cpu-s':>10}")
    for when, (n, cpu) in zip(("before", "after"), bare, strict=True):
        print(f"{'bare FastHttpUser loop, ' + when:<34} {n:>9} {cpu:>7.1f} {n / cpu:>10.0f}"
              f"  GET {args.bare_path}")
    print(f"{'journey users (open workload)':<34} {journeys[0]:>9} {journeys[1]:>7.1f} "
          f"{journey_rate:>10.0f}  (the bare loop's mean: {bare_rate:.0f})")
    ratio = journey_rate / bare_rate
    print(f"ratio {ratio:.0%} (target {TARGET:.0%}: {'met' if ratio >= TARGET else 'MISSED'});"
          f" journeys ran {wall:.0f}s wall, {client['sessions']['started']} sessions,"
          f" {client['sessions']['late']} late; mall 5xx answers: {server_errors(mall_metrics)}")
    if args.hold:
        hold(args.worker_cpu, env, args.start_factor)


if __name__ == "__main__":
    main()
