"""Search across stores and scene recommendations at the city preset (1,000 stores, 100,000
SKUs), as the load asks them: the load's words near a customer's home within 3 km, open now
(`search_city`), and the late-night scene's recommendations at the same homes; each mall's
own latency beside a bare aiohttp hello answered over the same connection in the same run.

    python benchmarks/discovery.py [--before REF] [--requests 2000]

Each build (`--before`, a git ref or checkout, first; then this checkout) serves a copy of
the same city (generated once by this checkout into the run cache), default configuration,
on the simulated clock of Friday 22:00, pinned to core 0; one client on core 1 asks every
question in turn over one keep-alive connection (latency, not throughput), after a warm-up
round of the same questions.  The figure that counts is the mall's own histogram (time from
the request's arrival to its answer); the client's times add loopback HTTP, which the bare
hello row shows.  Target: search p95 under 5 ms at the mall."""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
from mall_throughput import HOST, _exit_on_sigterm, free_port, server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crest_profile import histogram_quantile  # noqa: E402

from orchestration import builds  # noqa: E402
from orchestration.run import CACHE, flatten  # noqa: E402
from simulator import tables  # noqa: E402
from simulator.city import build_city  # noqa: E402
from simulator.loader import load  # noqa: E402

CLOCK = "2026-11-27T22:00:00+08:00@1"
SEED = 7
TARGET_P95_MS = 5.0
ROUTES = {"search_city": "/api/v1/search", "recommendations": "/api/v1/recommendations"}


def city_file() -> Path:
    """The city preset as this checkout generates it, cached like `xingcheng run`'s."""
    cached = (ROOT / CACHE / "cities" / f"city-{SEED}.db").resolve()
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        print("generating the city preset (once; ~20 s)", flush=True)
        asyncio.run(load(build_city(tables.presets()["city"], SEED), partial))
        partial.rename(cached)
    return cached


def questions(count: int) -> list[tuple[str, str]]:
    """(step, path) pairs: customers' homes drawn from the city, the load's words."""
    city = build_city(tables.presets()["city"], SEED)
    homes = city.customers
    rng = random.Random(SEED)
    asked = []
    for _ in range(count):
        i = rng.randrange(len(homes))
        at = {"lat": homes.lat[i], "lng": homes.lng[i]}
        word = rng.choice(tables.search_words())
        asked.append(("search_city", "/api/v1/search?" + urlencode(
            {"q": word, **at, "radius_m": 3000, "open_now": "true"})))
        asked.append(("recommendations", "/api/v1/recommendations?" + urlencode(
            {**at, "strategy": "nearby"})))
    return asked


def ask_all(port: int, asked: list[tuple[str, str]]) -> dict[str, list[float]]:
    """Client milliseconds per step, every question in turn over one connection."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    times: dict[str, list[float]] = {}
    for step, path in asked:
        started = time.perf_counter()
        conn.request("GET", path)
        reply = conn.getresponse()
        reply.read()
        if reply.status != 200:
            raise RuntimeError(f"{path}: {reply.status}")
        times.setdefault(step, []).append((time.perf_counter() - started) * 1000)
    conn.close()
    return times


def at_the_mall(port: int, routes: dict[str, str] = ROUTES) -> dict[str, dict[float, float]]:
    """Each step's cumulative buckets in the mall's own histogram: upper bound -> count."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    conn.request("GET", "/metrics")
    samples = flatten(conn.getresponse().read().decode())
    conn.close()
    found = {}
    for step, route in routes.items():
        buckets: dict[float, float] = {}
        for key, value in samples.items():
            if key.startswith("mall_http_request_duration_seconds_bucket{") and \
                    f'route="{route}"' in key:
                le = key.split('le="')[1].split('"')[0]
                buckets[float(le)] = buckets.get(float(le), 0.0) + value
        found[step] = buckets
    return found


def measure(build: builds.Build, city: Path, asked: list[tuple[str, str]],
            workdir: Path) -> tuple[dict, dict]:
    db = workdir / f"{build.commit[:12]}.db"
    shutil.copyfile(city, db)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(build.path)}
    command = [sys.executable, "-m", "xingcheng.cli", "serve", "--db", str(db), "--host", HOST,
               "--port", str(port), "--clock", CLOCK]
    with server(command, f"http://{HOST}:{port}/readyz", workdir / "mall.log", timeout=120,
                env=env, cwd=build.path):
        ask_all(port, asked)                       # warm-up: caches, SQLite's pages
        before = at_the_mall(port)
        client = ask_all(port, asked)
        after = at_the_mall(port)
    mall = {}
    for step in ROUTES:   # the measured round alone: its counts less the warm-up's
        ordered = sorted((le, n - before[step].get(le, 0.0)) for le, n in after[step].items())
        mall[step] = (int(ordered[-1][1]), 1000 * histogram_quantile(ordered, 0.5),
                      1000 * histogram_quantile(ordered, 0.95))
    return client, mall


def bare(asked_count: int, workdir: Path) -> list[float]:
    script = str(ROOT / "benchmarks" / "mall_throughput.py")
    port = free_port()
    with server([sys.executable, script, "--serve-hello", str(port)], f"http://{HOST}:{port}/",
                workdir / "hello.log"):
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        times = []
        for _ in range(asked_count):
            started = time.perf_counter()
            conn.request("GET", "/")
            conn.getresponse().read()
            times.append((time.perf_counter() - started) * 1000)
        conn.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", metavar="REF", help="a git ref or checkout to measure too")
    parser.add_argument("--requests", type=int, default=2000, help="questions of each kind")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    os.sched_setaffinity(0, {1})   # the client on core 1, every server on core 0
    city = city_file()
    asked = questions(args.requests)
    work = Path(tempfile.mkdtemp(prefix="discovery-"))
    worktrees = ROOT / CACHE / "builds"
    specs = ([args.before] if args.before else []) + [str(ROOT)]
    rows = []
    try:
        hello = bare(len(asked), work)
        for spec in specs:
            build = builds.resolve(spec, worktrees)
            client, mall = measure(build, city, asked, work)
            rows.append((build, client, mall))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"city preset (seed {SEED}), {args.requests:,} of each question, one connection, "
          f"mall on core 0 (clock {CLOCK.split('@')[0]}), client on core 1")
    print(f"bare aiohttp hello, same connection: client p50 {np.percentile(hello, 50):.2f} ms,"
          f" p95 {np.percentile(hello, 95):.2f} ms")
    print("| build | step | at the mall n | p50 ms | p95 ms | client p50 ms | p95 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for build, client, mall in rows:
        for step in ROUTES:
            ms = client[step]
            print(f"| {build.spec if build.kind == 'ref' else 'this checkout'} "
                  f"({build.commit[:12]}) | {step} | {mall[step][0]:,} | {mall[step][1]:.2f} | "
                  f"{mall[step][2]:.2f} | {np.percentile(ms, 50):.2f} | "
                  f"{np.percentile(ms, 95):.2f} | {np.percentile(ms, 99):.2f} |")
    search_p95 = rows[-1][2]["search_city"][2]
    print(f"search p95 at the mall {search_p95:.2f} ms: target < {TARGET_P95_MS:g} ms "
          f"{'met' if search_p95 < TARGET_P95_MS else 'NOT met'}")


if __name__ == "__main__":
    main()
