"""Load beyond one core: Locust's master and workers walk one schedule split exactly, their
results merge into the files one process writes, and a worker that dies ends the run as a
harness error naming it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from loadtests.load_plan import SplitError, plan, staff_share
from loadtests.merged_metrics import MergedMetrics, snapshot
from loadtests.scenario import load_scenario
from orchestration.run import flatten

from .test_run import SHORT, planned, sessions_of


def test_every_session_is_started_by_exactly_one_worker_under_its_own_number():
    whole = plan(load_scenario("smoke"))
    assert len(whole.schedule) > 300
    for workers in (1, 2, 3, 5):
        shares = [whole.share(k, workers) for k in range(workers)]
        started = sorted(number for share in shares for number, _ in share)
        assert started == list(range(len(whole.schedule)))
        for share in shares:   # the same session (due time, persona, customer) by number
            assert all(whole.schedule[number] is session for number, session in share)
            # neighbours go to different workers: each follows the curve at 1/N its height
            assert abs(len(share) - len(whole.schedule) / workers) <= 1


def test_clerks_are_dealt_so_every_worker_serves_every_sides_desk():
    for staff, sides, workers in ((8, 1, 2), (8, 2, 2), (8, 2, 3), (4, 2, 4), (2, 1, 1)):
        shares = [staff_share(staff, sides, k, workers) for k in range(workers)]
        assert sorted(j for share in shares for j in share) == list(range(1, staff * sides + 1))
        for share in shares:   # clerk j works side j mod sides, as in one process
            assert {j % sides for j in share} == set(range(sides)), (staff, sides, share)
    with pytest.raises(SplitError, match="4 clerks per side cannot be split over 5"):
        staff_share(4, 2, 0, 5)


def test_the_workers_metrics_are_served_as_one_load_generators():
    def worker(paid: float, seconds: list[float], walking: int, clock: float) -> list:
        registry = CollectorRegistry()
        Counter("loadgen_gmv_yuan", "", ["side"], registry=registry).labels("baseline").inc(
            paid)
        latency = Histogram("loadgen_request_duration_seconds", "", ["name"],
                            buckets=(0.1, 1.0), registry=registry)
        for s in seconds:
            latency.labels("pay").observe(s)
        Gauge("loadgen_sessions_in_flight", "", registry=registry).set(walking)
        Gauge("loadgen_simulated_time_seconds", "", registry=registry).set(clock)
        Gauge("loadgen_run_finished", "", registry=registry).set(1 if paid > 5 else 0)
        return snapshot(registry)

    merged = MergedMetrics()
    merged.update("a", worker(10.5, [0.05, 0.5], 3, 1000.0))
    merged.update("b", worker(2.25, [0.05, 2.0], 4, 1002.0))
    page = flatten(merged.exposition().decode())
    assert page['loadgen_gmv_yuan_total{side="baseline"}'] == 12.75
    assert page['loadgen_request_duration_seconds_bucket{le="0.1",name="pay"}'] == 2
    assert page['loadgen_request_duration_seconds_bucket{le="1.0",name="pay"}'] == 3
    assert page['loadgen_request_duration_seconds_count{name="pay"}'] == 4
    assert page["loadgen_sessions_in_flight"] == 7
    assert page["loadgen_simulated_time_seconds"] == 1002.0   # the latest clock
    assert page["loadgen_run_finished"] == 0                   # not until every worker is
    merged.update("b", worker(6.0, [], 0, 1003.0))             # a later report replaces
    page = flatten(merged.exposition().decode())
    assert page['loadgen_gmv_yuan_total{side="baseline"}'] == 16.5
    assert page["loadgen_run_finished"] == 1


def xingcheng(args: list[str], env: dict, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "xingcheng.cli", *args], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow  # a real run: a master and two workers
def test_two_workers_walk_exactly_the_one_process_schedule(tmp_path, env):
    scenario = tmp_path / "split.toml"
    scenario.write_text(SHORT.format(name="split", extra=""), encoding="utf-8")
    run = xingcheng(["run", str(scenario), "--workers", "2", "--reports",
                     str(tmp_path / "reports")], env, tmp_path)
    out, _ = run.communicate(timeout=240)
    assert run.returncode == 0, out
    report = next((tmp_path / "reports").iterdir())
    assert sessions_of(report) == planned(scenario)
    client = json.loads((report / "client.json").read_text())
    workers = client["workers"]
    assert [w["worker"] for w in workers] == [1, 2]
    total = len(planned(scenario))
    assert [w["scheduled"] for w in workers] == [len(range(k, total, 2)) for k in (0, 1)]
    assert sum(w["late"] for w in workers) == client["sessions"]["late"]
    assert (report / "loadgen-worker-1.log").exists()
    # one scrape target: the master's last page counts every worker's sessions
    page = flatten((report / "loadgen-metrics.prom").read_text())
    assert page["loadgen_sessions_scheduled_total"] == len(planned(scenario))
    assert not list(report.glob("payment-keys*")), "no secret stays in the report folder"


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *children(int(child))]
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


@pytest.mark.slow  # a real run whose worker is killed
def test_a_worker_killed_mid_run_ends_it_as_a_harness_error_naming_it(tmp_path, env):
    scenario = tmp_path / "killed.toml"
    scenario.write_text(SHORT.format(name="killed", extra="").replace("speed = 40",
                                                                      "speed = 20"))
    run = xingcheng(["run", str(scenario), "--workers", "2", "--reports",
                     str(tmp_path / "reports")], env, tmp_path)
    try:
        deadline = time.monotonic() + 90
        victim = None
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.5)
            workers = [p for p in children(run.pid) if "--worker" in cmdline(p)]
            report = next((tmp_path / "reports").glob("*"), None)
            walking = report is not None and (report / "mall-baseline.log").exists()
            if len(workers) == 2 and walking:
                time.sleep(8)   # into the load
                victim = workers[1]
        assert victim is not None, "the run never started its two workers"
        os.kill(victim, signal.SIGKILL)
        out, _ = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 2, out
    said = " ".join(out.split())
    assert "harness error: load worker" in said and f"pid {victim}" in said, said
    assert "stopped answering" in said and "sessions" in said
    report = next((tmp_path / "reports").iterdir())
    error = json.loads((report / "loadgen-error.json").read_text())
    assert error["facts"]["pid"] == victim and error["workers"] == 2
    assert not (report / "verdict.json").exists()
