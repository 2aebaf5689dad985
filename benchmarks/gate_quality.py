"""How good is the gate?  Paired trials on this machine, per case:

- A/A: one build on both sides; the gate should promote (rolling back is a false alarm);
- latency: the canary's order creation 25% slower (a fixed delay of a quarter of the
  baseline's median create_order time in the latest A/A trial: rounds interleave the cases,
  so the delay follows the machine's speed as it drifts; the shift the gate then measured is
  printed beside it);
- errors: 1% of the canary's payment requests answered 503;
- prices: the canary's prices 10% higher (customers buy less).

Each trial is a real `xingcheng run SCENARIO --baseline . --canary .` (with the case's fault
profile on the canary).  Each round runs every case on a city of its own seed (the scenario's
seed + the round), so trials differ in their city, customers and journeys, not only in the
machine's timing: with one seed, runs repeat each other almost exactly.  Printed per case:
trials, the share promoted / held / rolled back with a 95% Wilson interval, the deciding
metrics seen, and the median load time to a decision.  Targets: A/A rolled back in at most
5% of trials, each regression rolled back in at least 95%, a decision within 3 minutes of
load.

    python benchmarks/gate_quality.py --trials 20     # rounds of 4 trials, ~2.3 min each
    python benchmarks/gate_quality.py --trials 3 --cases aa,prices
    python benchmarks/gate_quality.py --trials 20 --resume   # go on where a stopped run ended

Each trial is appended to `trials.jsonl` in the output folder as soon as it is judged, so a run
stopped after hours keeps what it measured; `--resume` runs only the (round, case) pairs that
file lacks and prints the table over all of them.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from statsmodels.stats.proportion import proportion_confint

from loadtests.scenario import reseeded

ROOT = Path(__file__).resolve().parent.parent
VERDICTS = {0: "promote", 1: "rollback", 3: "hold"}
CASES = ("aa", "latency", "errors", "prices")
TARGETS = {"aa": ("rollback", "<=", 0.05), "latency": ("rollback", ">=", 0.95),
           "errors": ("rollback", ">=", 0.95), "prices": ("rollback", ">=", 0.95)}
PROFILES = {"errors": ROOT / "scenarios" / "faults" / "payment-errors.toml",
            "prices": ROOT / "scenarios" / "faults" / "price-up.toml"}


def trial(scenario: str, out: Path, faults: Path | None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "xingcheng.cli", "run", scenario, "--baseline", ".",
               "--canary", ".", "--reports", str(out)]
    if faults is not None:
        command += ["--canary-faults", str(faults)]
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    folders = sorted(out.iterdir(), key=lambda p: p.stat().st_mtime)
    verdict = json.loads((folders[-1] / "verdict.json").read_text()) if folders and (
        folders[-1] / "verdict.json").exists() else {}
    gate = verdict.get("gate", {})
    return {"exit": result.returncode, "verdict": VERDICTS.get(result.returncode, "error"),
            "deciding": gate.get("deciding", []),
            "load_seconds": gate.get("decided_after_s",
                                     verdict.get("facts", {}).get("real_seconds")),
            "wall_seconds": round(time.monotonic() - started, 1),
            "median_create_order_ms": next(
                (s["p50_ms"] for s in verdict.get("sides", {}).get("baseline", {})
                 .get("steps", []) if s["name"] == "create_order"), None),
            "create_order_shift": next(
                (m["reason"] for m in gate.get("metrics", [])
                 if m["key"] == "latency:create_order"), None),
            "folder": str(folders[-1]) if folders else None,
            "tail": result.stdout.strip().splitlines()[-1:] if result.returncode not in
            VERDICTS else []}


def latency_profile(median_ms: float, folder: Path, round_number: int) -> Path:
    """A quarter of the baseline's median order-creation time, added on the canary."""
    path = folder / f"slow-orders-25pct-{round_number}.toml"
    path.write_text(f'''# written by benchmarks/gate_quality.py: +25% of the measured median
name = "orders-25pct"
[[latency]]
route = "POST /api/v1/orders"
fixed_ms = {median_ms * 0.25:.2f}
''', encoding="utf-8")
    return path


def summarise(case: str, trials: list[dict]) -> str:
    n = len(trials)
    counts = Counter(t["verdict"] for t in trials)
    cells = []
    for verdict in ("promote", "hold", "rollback"):
        k = counts.get(verdict, 0)
        low, high = proportion_confint(k, n, alpha=0.05, method="wilson") if n else (0, 0)
        cells.append(f"{verdict} {k}/{n} = {k / n:.0%} [{low:.0%}, {high:.0%}]" if n else "-")
    times = [t["load_seconds"] for t in trials if t["load_seconds"] is not None]
    median_time = f"{statistics.median(times):.0f} s" if times else "-"
    want, op, limit = TARGETS[case]
    share = counts.get(want, 0) / n if n else 0.0
    met = share <= limit if op == "<=" else share >= limit
    deciding = Counter(d.split(":")[0] for t in trials for d in t["deciding"])
    errors = counts.get("error", 0)
    # The create_order shift the gate measured, relative to the baseline's median: what the
    # injected fault really did, beside what it was meant to do.
    shifts = [int(m[1]) for t in trials if (m := re.search(r"\(([+-]?\d+)%\)",
                                                           t.get("create_order_shift") or ""))]
    measured = (f"; create_order shift median {statistics.median(shifts):+.0f}% "
                f"[{min(shifts):+d}%, {max(shifts):+d}%]" if shifts else "")
    return (f"| {case} | {n} | {' | '.join(cells)} | {median_time} | "
            f"{want} {op} {limit:.0%}: {'met' if met else 'MISSED'} | "
            f"{', '.join(f'{k} ({v})' for k, v in deciding.most_common(4)) or '-'}{measured}"
            f"{f' | {errors} harness errors' if errors else ''} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--scenario", default="release")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "gate-quality")
    parser.add_argument("--resume", action="store_true",
                        help="keep the trials already in OUT/trials.jsonl, run the rest")
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; known: {', '.join(CASES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "trials.jsonl"
    done = {(r["round"], r["case"]): r for r in map(json.loads, log.read_text().splitlines())
            } if args.resume and log.exists() else {}
    if not args.resume:
        log.write_text("")
    results: dict[str, list[dict]] = {case: [] for case in cases}
    profiles: dict[str, Path] = dict(PROFILES)
    # Each round starts with an A/A trial, whose baseline median the latency case adds a
    # quarter of; the cases interleave, so a slow minute of the machine hits every case.
    cases = ["aa", *(c for c in cases if c != "aa")]
    results.setdefault("aa", [])
    for round_number in range(args.trials):
        scenario = reseeded(args.scenario, round_number, args.out)
        for case in cases:
            if (round_number, case) in done:
                results[case].append(done[round_number, case])
                continue
            if case == "latency":
                median = results["aa"][-1]["median_create_order_ms"]
                if median is None:
                    sys.exit(f"the A/A trial gave no create_order median: {results['aa'][-1]}")
                profiles["latency"] = latency_profile(median, args.out, round_number)
            result = {"round": round_number, "case": case,
                      **trial(scenario, args.out / case, profiles.get(case))}
            results[case].append(result)
            with log.open("a", encoding="utf-8") as records:
                records.write(json.dumps(result, ensure_ascii=False) + "\n")
            extra = (f"; fault {median * 0.25:.2f} ms on a {median} ms median, measured "
                     f"{result['create_order_shift']}" if case == "latency" else "")
            print(f"round {round_number + 1} {case}: {result['verdict']} "
                  f"{result['deciding'][:2]} after {result['load_seconds']} s of load "
                  f"({result['wall_seconds']} s wall){extra}", flush=True)
    (args.out / "trials.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    print(f"\nscenario {args.scenario}; {args.trials} rounds; trials in {args.out}\n")
    print("| case | trials | promoted | held | rolled back | median load to decision | "
          "target | deciding metrics |")
    print("|---|---|---|---|---|---|---|---|")
    for case in cases:
        print(summarise(case, results[case]))


if __name__ == "__main__":
    main()
