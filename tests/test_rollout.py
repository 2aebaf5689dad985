"""`xingcheng rollout` as a release manager runs it: both builds on one database behind the
gray router, the smoke load through it, the gate at every step (real processes, real Locust)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_run import xingcheng

ROOT = Path(__file__).resolve().parent.parent
# A canary that breaks one catalogue page in five: the first step must see it.
BROKEN_CATALOGUE = """name = "broken-catalogue"
description = "one catalogue page in five answered 500"
seed = 1

[[errors]]
route = "GET /api/v1/stores/{store_id}/products"
rate = 0.2
status = 500
"""


def _rollout(tmp_path: Path, env: dict, *extra: str):
    reports = tmp_path / "reports"
    result = xingcheng(["rollout", "--baseline", ".", "--canary", ".", "--scenario", "smoke",
                        "--reports", str(reports), *extra], env, ROOT)
    folders = sorted(reports.iterdir()) if reports.exists() else []
    found = (json.loads((folders[-1] / "rollout.json").read_text())
             if folders and (folders[-1] / "rollout.json").exists() else None)
    return result, found, folders[-1] if folders else None


@pytest.mark.slow  # a real rollout
def test_two_identical_builds_are_promoted_to_the_whole_city(tmp_path, env):
    result, found, folder = _rollout(tmp_path, env, "--by", "share", "--steps", "50,100")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert found["outcome"] == "promoted" and found["reached"] == 100, found["steps"]
    first, last = found["steps"]
    assert first["verdict"] == "promote" and last["verdict"] == "served"
    assert first["samples"]["canary"] > 0 and first["samples"]["baseline"] > 0
    assert set(last["samples"]) <= {"canary"} or last["samples"].get("baseline", 0) < 50
    assert found["verify"]["holds"], found["verify"]
    notes = [entry["note"] for entry in found["router_audit"]]
    assert notes[0] == "initial rules" and any("50%" in n for n in notes)
    assert (folder / "report.html").read_text().count("<table") >= 2


@pytest.mark.slow  # a real rollout
def test_a_faulty_canary_is_rolled_back_at_the_first_step(tmp_path, env):
    faults = tmp_path / "broken-catalogue.toml"
    faults.write_text(BROKEN_CATALOGUE)
    result, found, _ = _rollout(tmp_path, env, "--by", "store", "--steps", "50,100",
                                "--canary-faults", str(faults))
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert found["outcome"] == "rolled back" and found["reached"] == 50
    step = found["steps"][0]
    assert step["verdict"] == "rollback"
    assert any(d.startswith("rate:http_5xx") for d in step["deciding"]), step["deciding"]
    # Sessions were mid-journey when everything moved to the baseline: nothing was lost.
    assert found["verify"]["holds"], found["verify"]
    assert found["router_audit"][-1]["to"]["stores"] == []
    assert "ROLLED BACK" in result.stdout
