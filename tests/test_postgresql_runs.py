"""The harness on PostgreSQL (`--engine postgresql`): a run, a paired A/A run and a rollout of
two identical builds pass as they do on SQLite, each side on a database made for the run
from the cached city and dropped after it; and a PostgreSQL crash mid-peak (`--kill
postgres@SECONDS`) loses no paid order."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time

import asyncpg
import psutil
import pytest

from mall.storage.postgres_databases import LOCAL_SERVER

from .test_crash import CRASH
from .test_paired_run import ROOT, _paired
from .test_rollout import _rollout
from .test_run import xingcheng

pytestmark = pytest.mark.slow

POSTGRES = ("--engine", "postgresql")


def run_databases() -> set[str]:
    """The databases runs make for their sides (none should outlive its run)."""
    async def names() -> set[str]:
        conn = await asyncpg.connect(f"{LOCAL_SERVER}/postgres")
        try:
            return {row[0] for row in await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE 'xc_run_%'")}
        finally:
            await conn.close()
    return asyncio.run(names())


def test_a_run_on_postgresql_passes_verifies_and_drops_its_database(tmp_path, env):
    before = run_databases()
    reports = tmp_path / "reports"
    result = xingcheng(["run", "smoke", "--reports", str(reports), *POSTGRES], env, ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    verdict = json.loads((next(reports.iterdir()) / "verdict.json").read_text())
    assert verdict["facts"]["engine"] == "postgresql"
    assert verdict["sides"]["baseline"]["verify"]["holds"]
    assert all(f["breaches"] == 0 for f in verdict["sides"]["baseline"]["verify"]["invariants"])
    assert verdict["sides"]["baseline"]["funnel"]["paid"] > 0
    assert run_databases() == before


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_stops_its_processes_and_drops_its_database(tmp_path, env, stop):
    """Ctrl-C, or a SIGTERM (a cancelled CI job), in the middle of the load: exit 130, no
    verdict, and nothing left behind (the signal goes to the harness alone here, as a
    `kill` would: the load generator must be stopped by the harness, not by the
    terminal)."""
    before = run_databases()
    reports = tmp_path / "reports"
    # Started from a background job of a shell script, the tests inherit SIGINT ignored
    # (POSIX), and so would the harness: it gets the terminal's default back.
    harness = subprocess.Popen(
        [sys.executable, "-m", "xingcheng.cli", "run", "smoke", "--reports", str(reports),
         *POSTGRES], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 180
    while not list(reports.glob("*/loadgen.log")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert harness.poll() is None, harness.communicate()[0][-3000:]
    time.sleep(8)   # well into the load
    running = psutil.Process(harness.pid).children(recursive=True)
    assert any("locust" in " ".join(p.cmdline()) for p in running)
    harness.send_signal(stop)
    out, _ = harness.communicate(timeout=60)
    assert harness.returncode == 130, out[-3000:]
    assert "interrupted" in out
    assert not (next(reports.iterdir()) / "verdict.json").exists()
    _, alive = psutil.wait_procs(running, timeout=5)
    assert alive == [], [p.cmdline() for p in alive]
    assert run_databases() == before


def test_a_paired_a_a_run_on_postgresql_is_promoted(tmp_path, env):
    result, verdict, _ = _paired(tmp_path, env, *POSTGRES)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert verdict["gate"]["verdict"] == "promote"
    assert all(verdict["sides"][side]["verify"]["holds"] for side in ("baseline", "canary"))


def test_a_rollout_of_two_identical_builds_on_postgresql_is_promoted(tmp_path, env):
    result, found, _ = _rollout(tmp_path, env, "--by", "share", "--steps", "50,100",
                                *POSTGRES)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert found["outcome"] == "promoted" and found["verify"]["holds"], found["verify"]


def test_a_postgresql_crash_mid_peak_loses_no_paid_order(tmp_path, env):
    scenario = tmp_path / "crash.toml"
    scenario.write_text(CRASH, encoding="utf-8")
    result = xingcheng(["run", str(scenario), "--reports", str(tmp_path / "reports"),
                        "--kill", "postgres@12+3", *POSTGRES], env, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = next((tmp_path / "reports").iterdir())
    verdict = json.loads((report / "verdict.json").read_text())
    crashed = verdict["facts"]["crashes"]
    assert [c["target"] for c in crashed["schedule"]] == ["postgres"]
    assert crashed["schedule"][0]["back_s"] > crashed["schedule"][0]["killed_s"]
    assert crashed["clients"]["failed_outside"] == 0, crashed["clients"]
    # While it was down the mall answered 503 at once with Retry-After (journeys try again
    # after it, so a customer mostly never sees it), and logged why.
    log = (report / "mall-baseline.log").read_text()
    assert log.count("database unavailable on ") > 0
    prom = (report / "mall-baseline.prom").read_text()
    assert any(line.startswith("mall_http_requests_total{") and 'status_class="5xx"' in line
               and float(line.rsplit(" ", 1)[1]) > 0 for line in prom.splitlines())
    side = verdict["sides"]["baseline"]
    assert side["verify"]["verified"] and side["verify"]["holds"], side["verify"]
    payments = side["payments"]
    assert payments["charged"] > 10
    assert payments == {"charged": payments["charged"], "lost": 0, "not_charged": 0,
                        "amount_differs": 0, "settled_twice": 0}, payments
