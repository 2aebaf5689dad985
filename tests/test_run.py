"""`xingcheng run` end to end: a real mall process, a real headless Locust run kept short,
a verdict and an exit code."""

from __future__ import annotations

import csv
import gzip
import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from loadtests.load_plan import plan
from loadtests.scenario import load_scenario

from .phones import FULL_PHONE
from .test_cli import serving

SHORT = """name = "{name}"
[window]
day = "weekday"
start = "2026-11-27T22:20:00+08:00"
end = "2026-11-27T22:26:40+08:00"
speed = 40
[load]
staff = 2
drain_seconds = 5
[thresholds]
"http_5xx" = ["count==0"]
"oversold" = ["count==0"]
"orders" = ["count>0"]
{extra}
"""


def xingcheng(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xingcheng.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=240)


# Customers in the second arm of payment_method mostly leave before ordering: a known effect
# for `xingcheng experiment` to find in a real run.
WALK_AWAY = """
[experiment_response.payment_method]
wechat_pay_points = 0.9
"""


@pytest.fixture(scope="module")
def impossible_run(tmp_path_factory, env) -> tuple[subprocess.CompletedProcess, Path]:
    """One short real run, failed by a threshold no mall can meet; its report folder."""
    tmp_path = tmp_path_factory.mktemp("impossible")
    scenario = tmp_path / "impossible.toml"
    scenario.write_text(SHORT.format(name="impossible", extra=(
        '"http_req_duration{name:create_order}" = ["p(95)<0.001"]\n' + WALK_AWAY)),
        encoding="utf-8")
    result = xingcheng(["run", str(scenario), "--reports", str(tmp_path / "reports")], env,
                       tmp_path)
    return result, next((tmp_path / "reports").iterdir())


@pytest.mark.slow  # a real run
def test_an_impossible_threshold_fails_the_run_and_is_named(impossible_run):
    result, report = impossible_run
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert "FAIL" in last and "http_req_duration{name:create_order}: p(95)<0.001" in last
    verdict = json.loads((report / "verdict.json").read_text())
    by_name = {r["threshold"]: r for r in verdict["sides"]["baseline"]["thresholds"]}
    assert by_name["oversold: count==0"]["passed"] is True
    assert by_name["http_5xx: count==0"]["passed"] is True
    assert by_name["orders: count>0"]["observed"] > 0
    assert by_name["http_req_duration{name:create_order}: p(95)<0.001"]["passed"] is False
    assert verdict["sessions"]["started"] == verdict["sessions"]["scheduled"] > 50
    # One process walks the whole schedule: every session, its customer and due time.
    assert sessions_of(report) == planned(report.parent.parent / "impossible.toml")
    assert not list(report.glob("payment-keys*")), "no secret stays in the report folder"
    checked = verdict["sides"]["baseline"]["verify"]
    assert checked["verified"] and checked["holds"] and len(checked["invariants"]) == 12
    assert (report / "locust_stats.csv").exists() and (report / "summary.md").exists()
    steps = {s["name"] for s in verdict["sides"]["baseline"]["steps"]}
    assert {"login", "recommendations", "search_city", "nearby_stores", "catalogue",
            "create_order", "pay", "sandbox_pay", "verify_pickup"} <= steps
    # One simulated clock for the run: the mall's order stamps, read back as real seconds
    # since the window's start, agree with when the load generator sent those orders.
    orders_at = sorted(first_created_orders(report / "mall-baseline.db", 40))
    with gzip.open(report / "requests.csv.gz", "rt") as requests:
        sent_at = sorted(float(row["t_s"]) for row in csv.DictReader(requests)
                         if row["name"] == "create_order" and row["status"] == "201")
    assert len(orders_at) == len(sent_at) > 10
    assert abs(orders_at[0] - sent_at[0]) < 0.5, (orders_at[:3], sent_at[:3])
    assert verdict["facts"]["clock_anchor"] > verdict["facts"]["started_at"] - 10
    # The mall had a core of its own, apart from the load, where the machine has two.
    cores = sorted(os.sched_getaffinity(0))
    assert verdict["facts"]["cores"] == ({"baseline": cores[:1]} if len(cores) >= 2 else {})
    # Reports and logs never show a full phone number (the journeys send full ones).
    for path in report.iterdir():
        if path.suffix in (".json", ".md", ".csv", ".log"):
            assert not FULL_PHONE.search(path.read_text()), path.name


@pytest.mark.slow  # a real run
def test_xingcheng_experiment_reports_the_arms_of_a_real_run(impossible_run, env, tmp_path):
    _, report = impossible_run
    with gzip.open(report / "sessions.csv.gz", "rt") as sessions:
        rows = list(csv.DictReader(sessions))
    told = [row for row in rows if row["arms"]]
    assert len(told) > 0.9 * len(rows), "nearly every session logs in and is told its arms"
    result = xingcheng(["experiment", str(report), "--min-sessions", "20"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "payment_method" in result.stdout and "wechat_pay_points" in result.stdout
    reported = json.loads((report / "experiment.json").read_text())
    by_key = {e["key"]: e for e in reported["experiments"]}
    assert set(by_key) == {"home_entry", "recommendation_strategy", "payment_method"}
    for key, found in by_key.items():   # every told session in exactly one arm of each
        assert sum(arm["sessions"] for arm in found["arms"]) == len(told), key
        assert len(found["effects"]) == 3 and found["control"] == found["arms"][0]["arm"]
    control, walked = by_key["payment_method"]["arms"]
    assert walked["arm"] == "wechat_pay_points"
    assert walked["conversion"] < control["conversion"], (control, walked)
    conversion = by_key["payment_method"]["effects"][0]
    assert conversion["metric"] == "conversion" and conversion["effect"] < 0, conversion


def sessions_of(report: Path) -> list[tuple]:
    with gzip.open(report / "sessions.csv.gz", "rt") as rows:
        return [(int(r["number"]), int(r["user_id"]), float(r["due_s"]), r["persona"],
                 r["journey"]) for r in csv.DictReader(rows)]


def planned(scenario: Path) -> list[tuple]:
    """The sessions one process walks: the whole schedule, by number."""
    whole = plan(load_scenario(str(scenario)))
    return [(number, whole.user_id(s), round(whole.replay.real_elapsed(s.at), 3), s.persona,
             s.journey) for number, s in enumerate(whole.schedule)]


def first_created_orders(db: Path, speed: float) -> list[float]:
    """Real seconds from the window's start to each order the load made, by the mall's clock
    (the city's own history ends before the window)."""
    start = datetime.fromisoformat("2026-11-27T22:20:00+08:00")
    with sqlite3.connect(db) as conn:
        stamps = [row[0] for row in conn.execute(
            "SELECT created_at FROM orders WHERE created_at >= ?", (start.isoformat(),))]
    return [(datetime.fromisoformat(s) - start).total_seconds() / speed for s in stamps]


def scenario_and_city(tmp_path: Path, env: dict, name: str) -> tuple[Path, Path]:
    """A short scenario for a mall started by the test, and a copy of its city to serve."""
    scenario = tmp_path / f"{name}.toml"
    scenario.write_text(SHORT.format(name=name, extra='"order_completion" = ["rate>0.5"]'),
                        encoding="utf-8")
    cached = Path(env["XINGCHENG_CACHE"]) / "cities" / "small-7.db"
    if not cached.exists():
        assert xingcheng(["city", "generate", "--preset", "small", "--seed", "7", "--db",
                          str(cached)], env, tmp_path).returncode == 0
    db = tmp_path / "mall.db"
    db.write_bytes(cached.read_bytes())
    return scenario, db


@pytest.mark.slow  # a real run
def test_run_against_a_running_mall_with_target(tmp_path, env):
    # The city cache is filled by the previous run, or made here on first use.
    scenario, db = scenario_and_city(tmp_path, env, "target")
    keys = str(tmp_path / "payment-keys.json")
    with serving(tmp_path / "payer.db", "--keys", keys, command="paysandbox", env=env) as payer, \
            serving(db, "--clock", "2026-11-27T22:20+08:00@40", "--no-access-log",
                    "--payer", payer, "--payer-keys", keys, env=env) as base:
        result = xingcheng(["run", str(scenario), "--target", base, "--reports",
                            str(tmp_path / "reports")], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS target" in result.stdout.strip().splitlines()[-1]
    assert "verify baseline: not verified (external mall: no database here)" in result.stdout
    # The same mall without a payer could take no payment: said before any load is sent.
    with serving(db, "--no-access-log", env=env) as base:
        result = xingcheng(["run", str(scenario), "--target", base], env, tmp_path)
    assert result.returncode == 2 and "has no payer" in result.stdout, result.stdout


@pytest.mark.slow  # one `xingcheng run` per misuse
def test_misuse_is_exit_2(tmp_path, env):
    result = xingcheng(["run", "no-such-scenario"], env, tmp_path)
    assert result.returncode == 2 and "no scenario named" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(SHORT.format(name="bad", extra='"oversold" = ["count=0"]'))
    result = xingcheng(["run", str(bad)], env, tmp_path)
    assert result.returncode == 2 and "bad.toml:" in result.stdout
    with serving(tmp_path / "empty.db", "--no-access-log", env=env) as base:
        result = xingcheng(["run", "smoke", "--target", base], env, tmp_path)
    assert result.returncode == 2 and "does not" in result.stdout


def test_a_mall_with_workers_is_pinned_to_a_core_per_worker_or_not_at_all(monkeypatch):
    """Two workers kept to one core starve beside their database; on a machine without a
    core per worker and one for the load, nothing is pinned."""
    from orchestration import cores

    assert cores.processes_of(("--no-shedding", "--workers=2")) == 2
    assert cores.processes_of(("--workers", "3", "--pool-size=30")) == 3
    assert cores.processes_of(("--pool-size=30",)) == 1
    assert cores.processes_of(("--workers=x",)) == 1
    monkeypatch.setattr(cores, "MACHINE", frozenset(range(4)))
    placed = cores.place(["baseline"], processes=2)
    assert placed is not None
    assert placed.malls == {"baseline": frozenset({0, 1})} and placed.rest == {2, 3}
    assert cores.place(["baseline", "canary"], processes=2) is None   # 4 + the load > 4
    assert cores.place(["baseline", "canary"]).malls == {"baseline": {0}, "canary": {1}}
    monkeypatch.setattr(cores, "MACHINE", frozenset(range(2)))
    assert cores.place(["baseline"], processes=2) is None
    assert cores.place(["baseline"]).malls == {"baseline": {0}}
