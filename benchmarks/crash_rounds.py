"""Crash rounds: the late-night crest (`release`: Friday 22:00-23:20 in 2 minutes on the
district city) run again and again, each time with the mall killed with SIGKILL 40 s into the
load and the payer 80 s in, each started again on its own files 2 s later.  Per round: when
each came back, what clients saw (connection errors and other failures while something was
down, failures outside those windows), each invariant of `xingcheng verify` with its count,
and whether the mall and the payer agree on every payment.  A crash-safe mall shows 0
everywhere but in the while-down columns.  (The exit column is the run's: the scenario's own
error thresholds count the downtime's errors too, so 1 there is expected.)

    python benchmarks/crash_rounds.py                 # 5 rounds, ~2.5 min each
    python benchmarks/crash_rounds.py --rounds 2 --kill baseline@30 --kill payer@60+3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from loadtests.scenario import reseeded
from orchestration.crashes import payments_agree

ROOT = Path(__file__).resolve().parent.parent
KILLS = ("baseline@40", "payer@80")


def one_round(number: int, scenario: str, kills: list[str], out: Path) -> dict:
    folder = out / f"round-{number}"
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "xingcheng.cli", "run", scenario, "--reports",
               str(folder), *(arg for kill in kills for arg in ("--kill", kill))]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    reports = sorted(p for p in folder.iterdir() if p.is_dir())
    if not reports or not (reports[-1] / "verdict.json").exists():
        return {"round": number, "exit": done.returncode, "error": done.stdout[-500:]}
    report = reports[-1]
    verdict = json.loads((report / "verdict.json").read_text())
    crashed = verdict["facts"]["crashes"]
    checked = verdict["sides"]["baseline"]["verify"]
    return {"round": number, "exit": done.returncode,
            "wall_s": round(time.monotonic() - started, 1),
            "back": {c["target"]: c["back_s"] for c in crashed["schedule"]},
            "clients": crashed["clients"],
            "invariants": {f["name"]: f["breaches"] for f in checked.get("invariants", [])},
            "payments": payments_agree(report / "mall-baseline.db", report / "paysandbox.db"),
            "sessions": verdict["sessions"], "folder": str(report)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scenario", default="release")
    parser.add_argument("--kill", action="append", dest="kills",
                        help=f"WHO@SECONDS[+DOWN] (default {' '.join(KILLS)})")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "crash-rounds")
    args = parser.parse_args()
    kills = args.kills or list(KILLS)
    args.out.mkdir(parents=True, exist_ok=True)
    rounds = []
    for number in range(1, args.rounds + 1):
        scenario = reseeded(args.scenario, number, args.out)
        result = one_round(number, scenario, kills, args.out)
        rounds.append(result)
        print(json.dumps(result, ensure_ascii=False), flush=True)
    (args.out / "rounds.json").write_text(json.dumps(rounds, indent=1, ensure_ascii=False))
    names = sorted({name for r in rounds for name in r.get("invariants", {})})
    print(f"\n{args.scenario}, kills {' '.join(kills)}; {args.rounds} rounds in {args.out}\n")
    print("| round | exit | back (s) | conn. errors | failed while down | failed outside | "
          + " | ".join(names) + " | charged | lost | settled twice |")
    print("|" + "---|" * (9 + len(names)))
    for r in rounds:
        if "error" in r:
            print(f"| {r['round']} | {r['exit']} | harness error: {r['error'][:80]} |")
            continue
        c, p = r["clients"], r["payments"]
        back = ", ".join(f"{k} {v}" for k, v in r["back"].items())
        print(f"| {r['round']} | {r['exit']} | {back} | {c['connection_errors']} | "
              f"{c['failed_while_down']} | {c['failed_outside']} | "
              + " | ".join(str(r["invariants"].get(n, "-")) for n in names)
              + f" | {p['charged']} | {p['lost']} | {p['settled_twice']} |")


if __name__ == "__main__":
    main()
