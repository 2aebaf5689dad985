"""Simulated time is continuous: anchored to a real instant, so a restarted mall resumes where
simulated time has got to, and every process given the same anchor reads the same instant."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import datetime

import pytest

from shared.clock import SHANGHAI, Clock

from .test_cli import XINGCHENG, call, serving

START = "2026-11-27T21:00+08:00"


def simulated_now(base: str) -> tuple[datetime, str]:
    status, ready = call(f"{base}/readyz")
    assert status == 200, ready
    return datetime.fromisoformat(ready["clock"].rsplit("@", 1)[0]), ready["clock_anchor"]


@pytest.mark.slow  # processes started, stopped or killed
def test_a_restarted_mall_resumes_simulated_time_instead_of_going_back(tmp_path):
    db, speed = tmp_path / "mall.db", 60
    with serving(db, "--clock", f"{START}@{speed}") as base:
        first, anchor = simulated_now(base)
    time.sleep(1.5)   # down for 1.5 s of real time: 90 simulated seconds pass meanwhile
    # SIGKILL this time: the anchor was stored at the first start, not at a clean stop.
    with serving(db, "--clock", f"{START}@{speed}", stop=signal.SIGKILL) as base:
        again, resumed = simulated_now(base)
    assert resumed == anchor
    assert (again - first).total_seconds() >= 1.5 * speed
    with serving(db, "--clock", f"{START}@{speed}") as base:
        after_kill, _ = simulated_now(base)
    assert after_kill > again


@pytest.mark.slow  # processes started, stopped or killed
def test_a_restarted_payer_resumes_simulated_time_too(tmp_path):
    """The payment sandbox keeps its anchor with its own database, so WeChat's retry
    schedule (on simulated time) goes on where it was."""
    args = ("--keys", str(tmp_path / "keys.json"), "--clock", f"{START}@60")
    with serving(tmp_path / "payer.db", *args, command="paysandbox",
                 stop=signal.SIGKILL) as payer:
        first = datetime.fromisoformat(call(f"{payer}/readyz")[1]["clock"].rsplit("@", 1)[0])
    time.sleep(1.5)
    with serving(tmp_path / "payer.db", *args, command="paysandbox") as payer:
        again = datetime.fromisoformat(call(f"{payer}/readyz")[1]["clock"].rsplit("@", 1)[0])
    assert (again - first).total_seconds() >= 1.5 * 60


def test_another_simulation_on_the_same_database_starts_anew_and_says_so(tmp_path):
    db = tmp_path / "mall.db"
    with serving(db, "--clock", f"{START}@60") as base:
        _, first_anchor = simulated_now(base)
    with (tmp_path / "serve.log").open("w+") as log, serving(
            db, "--clock", "2026-11-28T09:00+08:00@10", log=log) as base:
        now, anchor = simulated_now(base)
    assert anchor != first_anchor and anchor.startswith("2026-11-28T09:00:00+08:00@10@")
    assert now.hour == 9 and now.minute < 2
    assert "simulated time restarts" in (tmp_path / "serve.log").read_text()


@pytest.mark.slow  # processes started, stopped or killed
def test_processes_given_one_anchor_read_the_same_simulated_instant(tmp_path):
    """Two malls on two databases (a baseline and a canary), anchored 100 real seconds ago:
    both read start + 100 s x speed, and so does a Clock built from the same anchor (the
    load generator's)."""
    since = time.time() - 100
    readings = []
    for side in ("baseline", "canary"):
        with serving(tmp_path / f"{side}.db", "--clock", f"{START}@30",
                     "--since", f"{since:.3f}") as base:
            readings.append((simulated_now(base)[0], time.time()))
    expected = Clock.parse(f"{START}@30", since=since)
    for reading, at in readings:
        drift = (reading - expected.start).total_seconds() - (at - since) * 30
        assert -30 * 0.5 < drift <= 0.5, drift   # within half a real second of the anchor's time
    # An explicit anchor (here an ISO instant) wins over the stored one on the same database.
    earlier = datetime.fromtimestamp(round(since) - 100, SHANGHAI)
    with serving(tmp_path / "baseline.db", "--clock", f"{START}@30",
                 "--since", earlier.isoformat()) as base:
        now, anchor = simulated_now(base)
    assert anchor.endswith(f"@{earlier.timestamp():.3f}")
    assert now > expected.now()


def test_bad_anchors_are_usage_errors():
    for args, message in ((["--since", "yesterday"], "neither Unix seconds"),
                          (["--clock", f"{START}@30", "--since", "2026-11-27T21:00"],
                           "needs a UTC offset"),
                          (["--since", "1795588546"], "give --clock too")):
        result = subprocess.run([*XINGCHENG, "serve", *args], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
