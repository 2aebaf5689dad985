"""What a load worker costs before it sends a request: the seconds and memory to import the
locustfile (what `locust --worker` loads) and to build its plan (the city and the schedule
of `late-night`), and which of the harness's heavy packages it pulled in.  Each figure is
the median of `--repeat` fresh processes; `--checkout DIR` measures another checkout (an
older commit, say) beside this one, with the same Python.

    python benchmarks/loadgen_worker_start.py [--checkout DIR ...] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("mall", "monitoring", "orchestration", "scipy", "statsmodels", "pandas", "numpy",
         "matplotlib", "aiohttp", "asyncpg", "cryptography")

PROBE = """
import json, resource, sys, time
started = time.perf_counter()
import locust
import loadtests.locustfile
imported = time.perf_counter()
rss_imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
from loadtests.load_plan import plan
from loadtests.scenario import load_scenario
plan(load_scenario("late-night"))
planned = time.perf_counter()
print(json.dumps({"import_s": imported - started, "plan_s": planned - imported,
                  "rss_imported_mb": rss_imported,
                  "rss_planned_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def measure(checkout: Path, repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", PROBE], cwd=checkout, check=True,
                             capture_output=True, text=True, timeout=300,
                             env={"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin"})
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    figures = {key: statistics.median(run[key] for run in runs)
               for key in ("import_s", "plan_s", "rss_imported_mb", "rss_planned_mb")}
    figures["heavy"] = [m for m in HEAVY if m in runs[0]["modules"]]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, action="append", default=[],
                        help="another checkout to measure beside this one")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'checkout':<28} {'import s':>8} {'plan s':>7} {'RSS imported':>13} "
          f"{'RSS planned':>12}  heavy packages imported")
    for checkout in (*args.checkout, ROOT):
        f = measure(checkout.resolve(), args.repeat)
        print(f"{str(checkout)[-28:]:<28} {f['import_s']:>8.2f} {f['plan_s']:>7.2f} "
              f"{f['rss_imported_mb']:>10.0f} MB {f['rss_planned_mb']:>9.0f} MB  "
              f"{', '.join(f['heavy']) or 'none'}")


if __name__ == "__main__":
    main()
