"""A canary beside its baseline under one load: builds, sides, and the gate's verdict as a
release manager meets it (real mall processes, a real Locust run, exit codes)."""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from loadtests.sides import CANARY, side_of
from monitoring.promql_source import query as instant
from orchestration import builds

from .test_cli import free_port
from .test_run import xingcheng

ROOT = Path(__file__).resolve().parent.parent
SLOW_ORDERS = ROOT / "scenarios" / "faults" / "slow-orders.toml"


def test_customers_split_by_a_stable_hash_within_two_points():
    openids = [f"wx-openid-{n:06d}" for n in range(10_000)]
    for share in (0.5, 0.1):
        sides = [side_of(o, share) for o in openids]
        canary = sides.count(CANARY) / len(sides)
        assert abs(canary - share) <= 0.02, (share, canary)
        assert sides == [side_of(o, share) for o in openids]   # sticky
    # A larger canary share only moves customers onto the canary, never back.
    small = {o for o in openids if side_of(o, 0.1) == CANARY}
    large = {o for o in openids if side_of(o, 0.5) == CANARY}
    assert small <= large


def test_builds_resolve_a_checkout_a_git_ref_and_a_url(tmp_path):
    here = builds.resolve(str(ROOT), tmp_path)
    assert here.kind == "checkout" and here.path == ROOT
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    ref = builds.resolve("HEAD", tmp_path)
    assert ref.kind == "ref" and ref.commit == head
    assert (ref.path / "mall" / "app.py").is_file()
    worktree_head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ref.path,
                                   capture_output=True, text=True, check=True).stdout.strip()
    assert worktree_head == head
    assert builds.resolve("HEAD", tmp_path).path == ref.path   # checked out once
    url = builds.resolve("http://127.0.0.1:9/", tmp_path)
    assert url.kind == "url" and url.url == "http://127.0.0.1:9"
    with pytest.raises(builds.BuildError, match="no directory, URL or git ref"):
        builds.resolve("no-such-ref-anywhere", tmp_path)
    with pytest.raises(builds.BuildError, match="not a Xingcheng checkout"):
        builds.resolve(str(tmp_path), tmp_path)
    subprocess.run(["git", "worktree", "remove", "--force", str(ref.path)], cwd=ROOT,
                   check=True)


def _paired(tmp_path: Path, env: dict, *extra: str, scenario: str = "smoke"):
    reports = tmp_path / "reports"
    result = xingcheng(["run", scenario, "--baseline", ".", "--canary", ".", "--reports",
                        str(reports), *extra], env, ROOT)
    folders = list(reports.iterdir()) if reports.exists() else []
    verdict = (json.loads((folders[0] / "verdict.json").read_text())
               if folders and (folders[0] / "verdict.json").exists() else None)
    return result, verdict, folders[0] if folders else None


@pytest.mark.slow  # a real paired run
def test_the_same_build_on_both_sides_is_promoted(tmp_path, env):
    result, verdict, folder = _paired(tmp_path, env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert "PROMOTE" in last
    assert verdict["mode"] == "paired" and verdict["gate"]["verdict"] == "promote"
    judged = {m["key"]: m for m in verdict["gate"]["metrics"]}
    assert "latency:create_order" in judged and "rate:conversion" in judged
    assert all(m["classification"] == "pass" for m in judged.values()), judged
    # Every session stayed on one side; the sides share the load about evenly.
    with gzip.open(folder / "sessions.csv.gz", "rt", encoding="utf-8") as rows:
        sessions = list(csv.DictReader(rows))
    share = sum(s["side"] == CANARY for s in sessions) / len(sessions)
    assert 0.35 < share < 0.65, share
    with gzip.open(folder / "requests.csv.gz", "rt", encoding="utf-8") as rows:
        sides = {r["side"] for r in csv.DictReader(rows)}
    assert sides == {"baseline", "canary"}
    # A core for each mall and one for the load, or none pinned.
    cores = sorted(os.sched_getaffinity(0))
    assert verdict["facts"]["cores"] == ({"baseline": cores[:1], "canary": cores[1:2]}
                                         if len(cores) >= 3 else {})
    for side in ("baseline", "canary"):
        assert (folder / f"mall-{side}.prom").exists()
        assert verdict["sides"][side]["funnel"]["paid"] > 0
    # Judged again from the recorded files: the same classification, metric by metric.
    again = xingcheng(["gate", str(folder)], env, ROOT)
    assert again.returncode == 0, again.stdout + again.stderr
    regated = json.loads((folder / "gate.json").read_text())
    assert [(m["key"], m["classification"]) for m in regated["metrics"]] == [
        (m["key"], m["classification"]) for m in verdict["gate"]["metrics"]]
    # With stricter settings (more samples than the run has) the same run is held.
    strict = tmp_path / "strict.toml"
    smoke = (ROOT / "scenarios" / "smoke.toml").read_text(encoding="utf-8")
    assert "\nmin_samples = 100 " in smoke
    strict.write_text(smoke.replace("\nmin_samples = 100 ", "\nmin_samples = 100000 "),
                      encoding="utf-8")
    held = xingcheng(["gate", str(folder), "--scenario", str(strict)], env, ROOT)
    assert held.returncode == 3 and "HOLD" in held.stdout.strip().splitlines()[-1]
    single = xingcheng(["gate", str(tmp_path)], env, ROOT)
    assert single.returncode == 2


@pytest.mark.slow  # a real paired run
def test_a_canary_with_slow_order_creation_is_rolled_back_also_through_prometheus(
        tmp_path, env):
    """The rehearsal of a slow canary, with a real Prometheus scraping both malls and the load:
    the gate names create_order, and judged again through PromQL (during the run, and later
    from the stored TSDB served anew) it classifies every metric alike."""
    result, verdict, folder = _paired(tmp_path, env, "--canary-faults", str(SLOW_ORDERS),
                                      "--prometheus")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert "ROLLBACK" in last and "create_order" in last
    assert verdict["gate"]["verdict"] == "rollback"
    failing = [m["key"] for m in verdict["gate"]["metrics"] if m["classification"] == "fail"]
    assert "latency:create_order" in failing
    assert verdict["sides"]["canary"]["build"]["faults"].endswith("slow-orders.toml")
    assert verdict["gate_prometheus"]["same_classification"] is True
    assert verdict["gate_prometheus"]["verdict"] == "rollback"
    # Serve the run's TSDB again and judge from it with the CLI.
    port = free_port()
    stored = folder / "prometheus"
    server = subprocess.Popen(
        ["prometheus", f"--config.file={stored / 'config' / 'prometheus.yml'}",
         f"--storage.tsdb.path={stored / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--log.level=error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        again = xingcheng(["gate", str(folder), "--prometheus", url], env, ROOT)
        assert again.returncode == 1, again.stdout + again.stderr
        regated = json.loads((folder / "gate.json").read_text())
        assert regated["source"] == url
        assert [(m["key"], m["classification"]) for m in regated["metrics"]] == [
            (m["key"], m["classification"]) for m in verdict["gate"]["metrics"]]
        # A recording rule over the same run: conversion per side, as the funnel says.
        at = verdict["facts"]["prometheus"]["at"]
        rows = instant(url, f'side:loadgen_conversion:ratio{{run="{folder.name}"}}', at)
        conversion = {r["metric"]["side"]: float(r["value"][1]) for r in rows}
        for side in ("baseline", "canary"):
            funnel = verdict["sides"][side]["funnel"]
            assert conversion[side] == pytest.approx(funnel["paid"] / funnel["session"])
    finally:
        server.terminate()
        server.wait(timeout=15)


@pytest.mark.slow  # a real paired run
def test_a_run_too_short_to_judge_is_held(tmp_path, env):
    scenario = tmp_path / "blink.toml"
    scenario.write_text("""name = "blink"
[window]
day = "weekday"
start = "2026-11-27T22:20:00+08:00"
end = "2026-11-27T22:21:00+08:00"
speed = 30
[load]
staff = 1
drain_seconds = 3
""", encoding="utf-8")
    result, verdict, _ = _paired(tmp_path, env, scenario=str(scenario))
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]
    assert "HOLD" in result.stdout.strip().splitlines()[-1]
    assert verdict["gate"]["verdict"] == "hold"
    assert any(m["classification"] == "inconclusive" for m in verdict["gate"]["metrics"])


@pytest.mark.slow  # one `xingcheng run` per misuse
def test_misused_builds_are_exit_2(tmp_path, env):
    result = xingcheng(["run", "smoke", "--canary", "no-such-ref-anywhere", "--reports",
                        str(tmp_path)], env, ROOT)
    assert result.returncode == 2 and "no directory, URL or git ref" in result.stdout
    result = xingcheng(["run", "smoke", "--canary-faults", str(SLOW_ORDERS), "--reports",
                        str(tmp_path)], env, ROOT)
    assert result.returncode == 2 and "need --canary" in result.stdout
