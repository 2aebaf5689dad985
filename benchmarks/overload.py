"""Overload: the scenario at twice its capacity (the rate factor `xingcheng capacity` found),
once as the mall ships (load shedding on) and once with shedding lifted (every request let in
and queued), the same load both times, in one run of this script.  Per run: the share of
requests shed (503 with Retry-After), the latency of the requests admitted (p50, p99, and
p99 per 10 s window over the scenario's curve), failures, and how soon after the last
shedding window the admitted p99 is back within 1.5x of its calm level (the median p99 of the
windows that shed nothing): recovery by itself, as the curve falls.

    xingcheng capacity late-night --reports reports          # writes capacity.json
    python benchmarks/overload.py --capacity reports/capacity-late-night/capacity.json
    python benchmarks/overload.py --scenario smoke --factor 4   # a factor known already
    python benchmarks/overload.py --factor 0.3 --measured OUT/shedding/RUN OUT/no/RUN  # re-read

One Locust process drives about 100 sessions/s on this 2-core machine, the late-night crest
(x1); the mall now holds far more than that, so twice its capacity is out of one generator's
reach here.  To see what shedding does at twice a capacity, give the mall less capacity:
a fault profile that makes its hot routes cost more CPU (scenarios/faults/heavy.toml), the
same for the capacity search and for both runs here:

    xingcheng capacity late-night --start 0.25 --serve-arg=--faults=scenarios/faults/heavy.toml
    python benchmarks/overload.py --capacity reports/capacity-late-night/capacity.json \
        --serve-arg=--faults=scenarios/faults/heavy.toml
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WINDOW_S = 10.0
UNSHED = ("--serve-arg=--no-shedding",)


def one_run(scenario: str, factor: float, out: Path, extra: tuple[str, ...]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    subprocess.run([sys.executable, "-m", "xingcheng.cli", "run", scenario, "--reports",
                    str(out), "--rate-factor", f"{factor:g}", *extra], cwd=ROOT,
                   capture_output=True, text=True)
    made = sorted(set(out.iterdir()) - before)
    if not made or not (made[-1] / "requests.csv.gz").exists():
        sys.exit(f"the run in {out} wrote no requests.csv.gz")
    return made[-1]


def measure(report: Path) -> dict:
    """Shed share, admitted latency overall and per window, and recovery, from the requests
    the load generator recorded."""
    windows: dict[int, list[float]] = defaultdict(list)
    shed_by_window: dict[int, int] = defaultdict(int)
    admitted, shed, failed, total = [], 0, 0, 0
    orders: list[float] = []
    with gzip.open(report / "requests.csv.gz", "rt", newline="") as rows:
        for row in csv.DictReader(rows):
            total += 1
            window = int(float(row["t_s"]) // WINDOW_S)
            if row["status"] == "503":
                shed += 1
                shed_by_window[window] += 1
                continue
            if row["failed"] == "1":
                failed += 1
            ms = float(row["ms"])
            admitted.append(ms)
            if row["name"] == "create_order":
                orders.append(ms)
            windows[window].append(ms)
    p99 = {w: float(np.percentile(v, 99)) for w, v in sorted(windows.items()) if len(v) >= 20}
    # The calm level: the median p99 of the windows in which nothing was shed.  At twice the
    # capacity the run's first window may be overloaded already, so it is no reference.
    calm = [value for w, value in p99.items() if not shed_by_window.get(w)]
    reference = float(np.median(calm)) if calm else next(iter(p99.values()), 0.0)
    last_shedding = max((w for w, n in shed_by_window.items()
                         if n > 0.01 * (n + len(windows.get(w, [])))), default=None)
    recovered = None
    if last_shedding is not None:
        recovered = next(((w - last_shedding) * WINDOW_S for w, value in p99.items()
                          if w > last_shedding and value <= 1.5 * reference), None)
    return {"requests": total, "shed_share": round(shed / max(1, total), 4),
            "failed": failed, "admitted_p50_ms": round(float(np.percentile(admitted, 50)), 1),
            "admitted_p99_ms": round(float(np.percentile(admitted, 99)), 1),
            "create_order_p99_ms": round(float(np.percentile(orders, 99)), 1) if orders else None,
            "worst_window_p99_ms": round(max(p99.values(), default=0.0), 1),
            "p99_by_window_ms": {f"{w * WINDOW_S:g}s": round(v, 1) for w, v in p99.items()},
            "calm_p99_ms": round(reference, 1), "recovered_after_s": recovered,
            "report": str(report)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="late-night")
    parser.add_argument("--capacity", type=Path, help="capacity.json of xingcheng capacity")
    parser.add_argument("--factor", type=float, help="the capacity's rate factor, if known")
    parser.add_argument("--times", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "overload")
    parser.add_argument("--serve-arg", dest="serve_args", action="append", default=[],
                        metavar="ARG", help="one more argument for the mall of both runs")
    parser.add_argument("--measured", nargs=2, type=Path, metavar=("SHEDDING", "NO_SHEDDING"),
                        help="re-read the report folders of two earlier runs instead of running")
    args = parser.parse_args()
    if args.capacity is not None:
        result = json.loads(args.capacity.read_text())
        factor, scenario = result["capacity_factor"], result["scenario"]
        if factor is None:
            sys.exit(f"{args.capacity}: no capacity was found")
    elif args.factor is not None:
        factor, scenario = args.factor, args.scenario
    else:
        parser.error("give --capacity FILE or --factor F")
    rate = factor * args.times
    results = {}
    passed = tuple(f"--serve-arg={arg}" for arg in args.serve_args)
    for i, (name, extra) in enumerate((("shedding (default)", ()), ("no shedding", UNSHED))):
        report = args.measured[i] if args.measured else one_run(
            scenario, rate, args.out / name.split()[0], (*passed, *extra))
        results[name] = measure(report)
        print(json.dumps({name: results[name]}, ensure_ascii=False), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overload.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    print(f"\n{scenario} at x{rate:g} ({args.times:g} x its capacity factor {factor:g})\n")
    print("| mall | requests | shed | failed | admitted p50 ms | admitted p99 ms | "
          "create_order p99 ms | worst 10 s p99 ms | p99 back after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        back = "-" if r["recovered_after_s"] is None else f"{r['recovered_after_s']:g} s"
        print(f"| {name} | {r['requests']:,} | {r['shed_share']:.1%} | {r['failed']} | "
              f"{r['admitted_p50_ms']} | {r['admitted_p99_ms']} | {r['create_order_p99_ms']} | "
              f"{r['worst_window_p99_ms']} | "
              f"{back} |")


if __name__ == "__main__":
    main()
