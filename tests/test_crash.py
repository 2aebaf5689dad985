"""Crash safety: a short peak during which the mall is killed with SIGKILL and started again
on the same database, and then the payer.  The run completes, clients fail only while
something is down, and the mall and the payer agree on every payment: none lost, none
charged twice."""

from __future__ import annotations

import json
import sqlite3

import pytest

from orchestration.crashes import payments_agree

from .test_run import xingcheng

# Twenty simulated minutes of a Friday's late-night crest in 30 s; a crash rehearsal's
# thresholds are what a crash may not break (errors while a process is down are counted
# apart, and judged by the run itself).
CRASH = """name = "crash"
[window]
day = "weekday"
start = "2026-11-27T22:00:00+08:00"
end = "2026-11-27T22:20:00+08:00"
speed = 40
[load]
staff = 2
drain_seconds = 5
[thresholds]
"oversold" = ["count==0"]
"orders" = ["count>0"]
"order_completion" = ["rate>0.5"]
"""


@pytest.mark.slow  # a real run with crashes
def test_killing_the_mall_and_the_payer_mid_peak_loses_no_payment(tmp_path, env):
    scenario = tmp_path / "crash.toml"
    scenario.write_text(CRASH, encoding="utf-8")
    result = xingcheng(["run", str(scenario), "--reports", str(tmp_path / "reports"),
                        "--kill", "baseline@8", "--kill", "payer@16+1"], env, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = next((tmp_path / "reports").iterdir())
    verdict = json.loads((report / "verdict.json").read_text())
    crashed = verdict["facts"]["crashes"]
    assert [c["target"] for c in crashed["schedule"]] == ["baseline", "payer"]
    assert all(c["back_s"] > c["killed_s"] for c in crashed["schedule"]), crashed
    clients = crashed["clients"]
    assert clients["failed_outside"] == 0, clients
    assert clients["connection_errors"] > 0 and clients["failed_while_down"] > 0, clients
    assert verdict["sessions"]["started"] == verdict["sessions"]["scheduled"]
    checked = verdict["sides"]["baseline"]["verify"]   # xingcheng verify, after the run
    assert checked["verified"] and checked["holds"], checked
    # Both processes restarted and logged it.
    assert (report / "mall-baseline.log").read_text().count("mall ready on") == 2
    assert (report / "paysandbox.log").read_text().count("payment sandbox ready") == 2

    agree = payments_agree(report / "mall-baseline.db", report / "paysandbox.db")
    assert agree["charged"] > 20
    assert agree == {"charged": agree["charged"], "lost": 0, "not_charged": 0,
                     "amount_differs": 0, "settled_twice": 0}, agree
    with sqlite3.connect(report / "paysandbox.db") as conn:
        owed = conn.execute("SELECT count(*) FROM outbox WHERE state != 'delivered'").fetchone()
    assert owed == (0,)   # every notification owed was delivered in the end
