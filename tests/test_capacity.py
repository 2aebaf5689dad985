"""`xingcheng capacity`: the scenario's arrival rate stepped up until its SLO breaks, with the
highest rate held, the step that broke and why, in capacity.json and a self-contained plot."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .test_faults import SHIPPED
from .test_run import SHORT

HEAVY = SHIPPED / "heavy.toml"


def search(tmp_path: Path, env: dict, p95_ms: float, *args: str) -> tuple[int, str, dict]:
    """The capacity search on the run tests' short late-night window, whose SLO is its
    http_5xx threshold and a p95 of order creation under `p95_ms`."""
    scenario = tmp_path / f"cap-{p95_ms:g}.toml"
    scenario.write_text(SHORT.format(name="cap", extra=(
        f'"http_req_duration{{name:create_order}}" = ["p(95)<{p95_ms:g}"]')), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "xingcheng.cli", "capacity", str(scenario),
                           "--reports", str(tmp_path / "reports"), *args], env=env,
                          capture_output=True, text=True, timeout=300)
    folder = tmp_path / "reports" / "capacity-cap"
    result = json.loads((folder / "capacity.json").read_text()) if (
        folder / "capacity.json").exists() else {}
    return done.returncode, done.stdout + done.stderr, result


@pytest.mark.slow  # real Locust runs, step by step
def test_steps_that_hold_give_the_highest_rate_and_a_self_contained_plot(tmp_path, env):
    code, output, result = search(tmp_path, env, 5000, "--growth", "2", "--steps", "2")
    assert code == 0, output[-3000:]
    first, second = result["steps"]
    assert first["held"] and second["held"]
    assert second["factor"] == 2 and second["target_per_s"] > 1.8 * first["target_per_s"]
    assert result["capacity_sessions_per_s"] == second["sessions_per_s"] > 0
    assert "ran out of steps" in result["stopped_because"]
    page = (tmp_path / "reports" / "capacity-cap" / "capacity.html").read_text()
    assert "Plotly.newPlot" in page and result["summary"] in page
    assert not re.search(r"<script[^>]+src=", page)   # offline: the script is in the page


@pytest.mark.slow  # real Locust runs, step by step
def test_a_broken_slo_is_named_and_no_capacity_is_claimed(tmp_path, env):
    code, output, result = search(tmp_path, env, 0.001, "--steps", "3")
    assert code == 1, output[-3000:]
    assert len(result["steps"]) == 1 and not result["steps"][0]["held"]
    assert result["capacity_sessions_per_s"] is None
    assert "http_req_duration{name:create_order}: p(95)<0.001" in result["stopped_because"]


@pytest.mark.slow  # real Locust runs, step by step
def test_a_step_that_turned_customers_away_did_not_hold(tmp_path, env):
    # A mall told to shed at the slightest wait (0.1 ms over 1 ms) keeps its admitted
    # latency low by refusing requests: that is past its capacity, not within it.  Its hot
    # routes cost more CPU (the heavy profile), so that its loop is busy enough to count a
    # wait as a queue, on a core of its own too.
    code, output, result = search(tmp_path, env, 5000, "--steps", "2",
                                  "--serve-arg=--shed-target-ms=0.1",
                                  "--serve-arg=--shed-interval-ms=1",
                                  f"--serve-arg=--faults={HEAVY}")
    assert code == 1, output[-3000:]
    step = result["steps"][0]
    assert not step["held"] and step["shed_share"] > 0.01
    assert f"the mall shed {step['shed_share']:.1%} of its requests" in result["stopped_because"]
