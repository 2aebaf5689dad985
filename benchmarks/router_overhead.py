"""What the gray router adds to a catalogue request, as a client sees it: the latency of the
same request sent straight to the mall and through `xingcheng router`, in alternating rounds
of the same open-model load (requests at a fixed rate, as customers arrive, not as fast as
a closed loop can push), with a bare aiohttp hello beside them as the client's own floor.

    python benchmarks/router_overhead.py [--rate 200] [--duration 10] [--rounds 3]

The mall runs as users run it (default configuration, access log on, the customer's token
on every request) on core 0 with a canary on the same database; the router and the client
share core 1, as a gateway sits on a host of its own.  Target: the router adds at most 15%
to the p50.  Only 127.0.0.1 is ever targeted; every process stops at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from mall_throughput import (
    HOST,
    _exit_on_sigterm,
    free_port,
    operator_token,
    seed,
    serve_hello,
    server,
)

P50_OVERHEAD_TARGET = 0.15
ROUTER_CORE = "1"


async def open_load(url: str, token: str, rate: float, seconds: float) -> list[float]:
    """Latencies (ms) of requests started at `rate` per second for `seconds`, each on its
    schedule whether or not earlier ones have finished."""
    latencies: list[float] = []
    failures = 0

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        started = time.perf_counter()
        async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
            await resp.read()
            if resp.status != 200:
                failures += 1
        latencies.append((time.perf_counter() - started) * 1000)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        begin, tasks = time.perf_counter(), []
        for n in range(int(rate * seconds)):
            delay = begin + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session)))
        await asyncio.gather(*tasks)
    if failures:
        raise RuntimeError(f"{failures} requests to {url} did not answer 200")
    return latencies


def percentiles(latencies: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return {"p50": statistics.median(latencies), "p90": cuts[89], "p99": cuts[98]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve-hello", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_hello is not None:
        serve_hello(args.serve_hello)
        return
    if shutil.which("taskset") is None:
        sys.exit("taskset is not installed (apt-get install util-linux)")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="router-overhead-"))
    try:
        rows = measure(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"open load: {args.rate:g} req/s for {args.duration:g} s, {args.rounds} alternating "
          "rounds each; mall(s) on core 0, router and client on core 1")
    print(f"{'path':<40} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    for name, figures in rows.items():
        print(f"{name:<40} {figures['p50']:>8.3f} {figures['p90']:>8.3f} {figures['p99']:>8.3f}")
    direct, routed = rows["catalogue, straight to the mall"], rows["catalogue, through the router"]
    added = routed["p50"] / direct["p50"] - 1
    verdict = "met" if added <= P50_OVERHEAD_TARGET else "NOT met"
    print(f"the router adds {routed['p50'] - direct['p50']:+.3f} ms ({added:+.1%}) to the p50 "
          f"(target <= {P50_OVERHEAD_TARGET:.0%}: {verdict}); "
          f"p99 {routed['p99'] - direct['p99']:+.3f} ms")


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, dict[str, float]]:
    script = str(Path(__file__).resolve())
    hello_port = free_port()
    hello_url = f"http://{HOST}:{hello_port}/"
    db = workdir / "mall.db"
    operator = operator_token(db)
    ports = {side: free_port() for side in ("baseline", "canary", "router")}
    urls = {side: f"http://{HOST}:{port}" for side, port in ports.items()}
    mall = [sys.executable, "-m", "xingcheng.cli", "serve", "--db", str(db), "--host", HOST]
    router = ["taskset", "-c", ROUTER_CORE, sys.executable, "-m", "xingcheng.cli", "router",
              "--baseline", urls["baseline"], "--canary", urls["canary"], "--host", HOST,
              "--port", str(ports["router"]), "--admin-token-file", str(workdir / "admin"),
              "--audit", str(workdir / "audit.jsonl")]
    samples: dict[str, list[float]] = {"bare aiohttp hello, straight": [],
                                       "catalogue, straight to the mall": [],
                                       "catalogue, through the router": []}
    with server([sys.executable, script, "--serve-hello", str(hello_port)], hello_url,
                workdir / "hello.log"), \
            server([*mall, "--port", str(ports["baseline"])], f"{urls['baseline']}/readyz",
                   workdir / "baseline.log"), \
            server([*mall, "--port", str(ports["canary"])], f"{urls['canary']}/readyz",
                   workdir / "canary.log"):
        seeded = seed(urls["baseline"], operator)
        path = f"/api/v1/stores/{seeded.store_id}/products"
        with (workdir / "router.log").open("wb") as log:
            proc = subprocess.Popen(router, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait(f"{urls['router']}/router/healthz")
            targets = {"bare aiohttp hello, straight": hello_url,
                       "catalogue, straight to the mall": urls["baseline"] + path,
                       "catalogue, through the router": urls["router"] + path}
            for url in targets.values():  # warm every path up, discarded
                asyncio.run(open_load(url, seeded.customer_token, args.rate, 2.0))
            for _ in range(args.rounds):
                for name, url in targets.items():
                    samples[name] += asyncio.run(open_load(url, seeded.customer_token,
                                                           args.rate, args.duration))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return {name: percentiles(values) for name, values in samples.items()}


def _wait(url: str, seconds: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready in {seconds:g} s")


if __name__ == "__main__":
    main()
