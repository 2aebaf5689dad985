"""Where the mall's one core goes at the crest: a scenario's busiest stretch, run as users run
it (`xingcheng run`, default configuration, the shipped journeys), with py-spy sampling the
mall from outside; per route, the mall's own latency from its histogram, beside the same
figures for another build measured in the same session.

    python benchmarks/crest_profile.py [--before REF] [--scenario late-night] [--minutes 60]

For each build (`--before`, a git ref or checkout, first; then this checkout) the scenario is
narrowed to `--minutes` simulated minutes centred on the minute its traffic curve peaks, and
run once.  py-spy (sampling, out of process, `--nonblocking`) records the mall from the first
session to the last; the mall's CPU share over that time says how close to saturation it
ran.  Into `--out` (default benchmarks/results/) go, per build, a flame graph
(`crest_profile-<label>.svg`) and the top functions by own and inclusive samples
(`crest_profile-<label>.txt`); the route table is printed, and written with the tops.

Only 127.0.0.1 is targeted; each run stops by itself after the window and its drain."""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loadtests.load_plan import traffic_for  # noqa: E402
from loadtests.scenario import load_scenario, resolve  # noqa: E402
from orchestration.run import STARTUP_LEAD_S, flatten  # noqa: E402

SAMPLES_PER_SECOND = 100
TOP = 30
DURATION = "mall_http_request_duration_seconds"


@dataclass
class Measured:
    """One build's crest: what the mall and the clients saw, and where its CPU went."""

    label: str
    commit: str
    mall_cpu_share: float
    routes: dict[str, tuple[int, float, float]]       # route -> (requests, p50 ms, p95 ms)
    steps: dict[str, tuple[int, float, float]]        # step -> (requests, p50 ms, p95 ms)
    own: Counter = field(default_factory=Counter)       # function -> samples on top
    inclusive: Counter = field(default_factory=Counter)  # function -> samples anywhere
    samples: int = 0
    summary: str = ""


def crest_scenario(name: str, minutes: float, folder: Path) -> Path:
    """A copy of the scenario with its window narrowed to `minutes` around the crest of its
    traffic curve (the minute with the most sessions starting)."""
    scenario = load_scenario(name)
    window = scenario.spec.window
    traffic = traffic_for(scenario)
    span = int((window.end - window.start).total_seconds() // 60)
    crest = max(range(span), key=lambda m: traffic.city_rate(window.start
                                                              + timedelta(minutes=m + 0.5)))
    half = timedelta(minutes=minutes / 2)
    start = max(window.start, window.start + timedelta(minutes=crest) - half)
    end = min(window.end, start + 2 * half)
    text = resolve(name).read_text(encoding="utf-8")
    for key, moment in (("start", start), ("end", end)):
        text = re.sub(rf'^{key}\s*=.*$', f'{key} = "{moment.isoformat()}"', text, count=1,
                      flags=re.MULTILINE)
    text = re.sub(r'^name\s*=.*$', f'name = "{scenario.name}-crest"', text, count=1,
                  flags=re.MULTILINE)
    path = folder / f"{scenario.name}-crest.toml"
    path.write_text(text, encoding="utf-8")
    print(f"{scenario.name}: crest at {(window.start + timedelta(minutes=crest)):%H:%M}, "
          f"{traffic.city_rate(window.start + timedelta(minutes=crest)):.2f} sessions per "
          f"simulated second; running {start:%H:%M}-{end:%H:%M} at {window.speed:g}x",
          flush=True)
    return path


def _mall_pid(reports: Path, run: subprocess.Popen, deadline: float) -> int:
    """The mall process serving a database under `reports` (the harness starts it)."""
    while time.monotonic() < deadline and run.poll() is None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in argv and any(str(reports).encode() in a for a in argv):
                return int(entry.name)
        time.sleep(0.2)
    output = run.communicate()[0] if run.poll() is not None else ""
    raise RuntimeError(f"no mall process serving a database under {reports} appeared:\n"
                       f"{output[-3000:]}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile_run(build: str, label: str, scenario: Path, seconds: float, out: Path,
                work: Path) -> Measured:
    """`xingcheng run` against `build`, py-spy on its mall for the load's `seconds`."""
    reports = work / label
    reports.mkdir(parents=True)
    run = subprocess.Popen([sys.executable, "-m", "xingcheng.cli", "run", str(scenario),
                            "--target", build, "--reports", str(reports)], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pid = _mall_pid(reports, run, time.monotonic() + 600)
    # The load begins STARTUP_LEAD_S after the harness starts the payer, a little before the
    # mall; profiling from the mall's start plus that lead covers the load's first seconds.
    time.sleep(STARTUP_LEAD_S)
    svg, raw = out / f"crest_profile-{label}.svg", work / f"{label}.folded"
    spies = [subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--rate",
                               str(SAMPLES_PER_SECOND), "--nonblocking", "--duration",
                               str(round(seconds)), "--format", kind, "--output", str(path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for kind, path in (("flamegraph", svg), ("raw", raw))]
    cpu_before, wall_before = _cpu_seconds(pid), time.monotonic()
    for spy in spies:
        spy.wait()
    share = (_cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before)
    output, _ = run.communicate()
    folders = [p for p in reports.iterdir() if p.is_dir()]
    if not folders or not (folders[0] / "mall-baseline.prom").exists():
        raise RuntimeError(f"the run of {build} left no report:\n{output[-3000:]}")
    report = folders[0]
    measured = Measured(label, _commit(build), share, server_routes(report / "mall-baseline.prom"),
                        client_steps(report / "requests.csv.gz"))
    measured.summary = "\n".join(line for line in output.splitlines()
                                 if line.startswith(("PASS", "FAIL")) or "PASS" in line
                                 or "FAIL" in line)
    read_folded(raw, measured)
    return measured


def _commit(build: str) -> str:
    where = build if Path(build).is_dir() else str(ROOT)
    ref = "HEAD" if Path(build).is_dir() else build
    done = subprocess.run(["git", "rev-parse", "--short=12", ref], cwd=where,
                          capture_output=True, text=True)
    commit = done.stdout.strip() or "unknown"
    dirty = Path(build).is_dir() and subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
        capture_output=True, text=True).stdout.strip()
    return f"{commit}-dirty" if dirty else commit


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus's histogram_quantile: linear within the bucket the rank falls in."""
    total = buckets[-1][1]
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def server_routes(prom: Path) -> dict[str, tuple[int, float, float]]:
    """Per route (method and path, every status class together): requests, p50, p95 in ms,
    from the mall's own request histogram as the run left it."""
    by_route: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for key, value in flatten(prom.read_text(encoding="utf-8")).items():
        if not key.startswith(f"{DURATION}_bucket{{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', key))
        route = f"{labels['method']} {labels['route']}"
        by_route[route][float(labels["le"])] += value
    found = {}
    for route, cumulative in by_route.items():
        buckets = sorted(cumulative.items())
        if buckets[-1][1] < 1 or route.endswith(("/metrics", "/readyz")):
            continue
        found[route] = (int(buckets[-1][1]), 1000 * histogram_quantile(buckets, 0.5),
                        1000 * histogram_quantile(buckets, 0.95))
    return found


def client_steps(requests: Path) -> dict[str, tuple[int, float, float]]:
    """Per step of the journeys: requests, p50, p95 in ms as the clients timed them."""
    times: dict[str, list[float]] = defaultdict(list)
    with gzip.open(requests, "rt", newline="") as rows:
        for row in csv.DictReader(rows):
            times[row["name"]].append(float(row["ms"]))
    return {name: (len(ms), float(np.percentile(ms, 50)), float(np.percentile(ms, 95)))
            for name, ms in times.items()}


def read_folded(path: Path, into: Measured) -> None:
    """py-spy's raw output (one `frame;frame;... count` line per distinct stack)."""
    if not path.exists():
        return
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_function(frame) for frame in stack.split(";")]
        n = int(count)
        into.samples += n
        into.own[frames[-1]] += n
        for frame in set(frames):
            into.inclusive[frame] += n


def _function(frame: str) -> str:
    """`handler (mall/routes.py:199)` -> `handler (mall/routes.py)`: one entry a function."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3.11/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    path = re.sub(r"^\.xingcheng-cache/builds/[0-9a-f]+/", "", path)
    return f"{name} ({path})"


def tops(measured: Measured) -> str:
    lines = [f"# {measured.label} ({measured.commit}): {measured.samples:,} samples at "
             f"{SAMPLES_PER_SECOND}/s, mall CPU {measured.mall_cpu_share:.0%} of one core", ""]
    for title, counter in (("own (on top of the stack)", measured.own),
                           ("inclusive (anywhere on the stack)", measured.inclusive)):
        lines.append(f"## top {TOP} functions by samples, {title}")
        for function, n in counter.most_common(TOP):
            lines.append(f"{n / max(1, measured.samples):6.1%}  {function}")
        lines.append("")
    return "\n".join(lines)


def table(title: str, rows: list[Measured], pick) -> str:
    names = sorted(set().union(*(pick(m) for m in rows)),
                   key=lambda n: -max(pick(m).get(n, (0, 0, 0))[0] for m in rows))
    head = " | ".join(f"{m.label} n | p50 | p95" for m in rows)
    lines = [f"{title}", "", f"| {title.split()[0]} | {head} |",
             "|---|" + "---|---|---|" * len(rows)]
    for name in names:
        cells = []
        for m in rows:
            n, p50, p95 = pick(m).get(name, (0, float("nan"), float("nan")))
            cells.append(f"{n:,} | {p50:.1f} | {p95:.1f}")
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="late-night")
    parser.add_argument("--minutes", type=float, default=60.0,
                        help="simulated minutes around the crest")
    parser.add_argument("--before", metavar="REF",
                        help="a git ref or checkout to measure first, the same way")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if shutil.which("py-spy") is None:
        sys.exit("py-spy is not installed (pip install py-spy)")
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="crest-profile-"))
    scenario = crest_scenario(args.scenario, args.minutes, work)
    seconds = load_scenario(str(scenario)).spec.window.real_seconds
    builds = ([(args.before, "before")] if args.before else []) + [(str(ROOT), "after")]
    measured = []
    try:
        for build, label in builds:
            m = profile_run(build, label, scenario, seconds, args.out, work)
            print(f"{label} ({m.commit}): mall CPU {m.mall_cpu_share:.0%} of one core; "
                  f"{m.summary}", flush=True)
            measured.append(m)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    routes = table("route at the mall (its histogram; ms, interpolated in buckets)",
                   measured, lambda m: m.routes)
    steps = table("step at the clients (every sample; ms)", measured, lambda m: m.steps)
    cpu = ", ".join(f"{m.label} ({m.commit}) {m.mall_cpu_share:.0%}" for m in measured)
    text = f"mall CPU share of one core: {cpu}\n\n{routes}\n\n{steps}\n"
    print("\n" + text)
    for m in measured:
        (args.out / f"crest_profile-{m.label}.txt").write_text(
            f"{tops(m)}\n{text}", encoding="utf-8")
        print(f"{m.label}: {args.out / f'crest_profile-{m.label}.svg'}, "
              f"{args.out / f'crest_profile-{m.label}.txt'}")


if __name__ == "__main__":
    main()
