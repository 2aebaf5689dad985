"""Requests per second and p99 latency of the mall's two hottest endpoints, each measured
beside a bare aiohttp JSON hello started in the same run on the same core.

These machines are shared and noisy (../shared/reference-figures.md), so an absolute figure
means little on its own: the catalogue is judged by its ratio to the bare figure, and order
creation by an absolute floor that only counts when the bare figure is within its reference
range and no other process took a noticeable share of either core during the runs (both are
checked and reported).

    python benchmarks/mall_throughput.py [--duration 10] [--connections 50] [--warmup 2]
                                         [--rounds 3]

The mall runs as users run it: its default configuration (the JSON access log on, written
to a file) with the customer's token on catalogue requests, as the mini-program sends it; the
catalogue is measured again with `--no-access-log` to show what the log costs.  Then the same
two requests on SQLite with 2 workers and on PostgreSQL with 1 and 2 (`serve --workers`):
every server process is kept to core 0, so on this 2-core machine the worker rows show what
several processes cost, not what they gain; PostgreSQL's own processes are not kept to a
core, and count as "other" CPU.

Layout: every server runs pinned to core 0 (`taskset -c 0`), wrk to core 1, so the load
generator never steals the server's CPU.  Only 127.0.0.1 is ever targeted.  The mall gets a
fresh SQLite file seeded through its own HTTP API (operator -> store -> staff -> 20 products
-> stock), as a real operator and merchant would, so the figures include every layer a client
goes through.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from mall.storage import postgres_databases
from mall.storage.postgres_databases import LOCAL_SERVER
from orchestration.builds import stop

HOST = "127.0.0.1"
SERVER_CORE, WRK_CORE = "0", "1"
PRODUCTS = 20
# The API caps one stock sync at 1,000,000 (schemas.Stock); orders reserve and never pay,
# so this is the number of orders a whole run may create before they would run out.
STOCK = 1_000_000
# Bare hello on this machine kind when it is quiet (../shared/reference-figures.md); a bare
# figure below it means a busy or slow machine, and the absolute order figure with it.
BARE_REFERENCE = (13_800.0, 15_700.0)
CATALOGUE_RATIO_TARGET = 0.55
ACCESS_LOG_COST_TARGET = 0.10   # the default access log's share of catalogue throughput
ORDERS_PER_SECOND_TARGET = 3500.0
CREATED_SAMPLE = 'mall_orders_total{change="created"}'
OTHER_CPU_WARNING = 0.10
# Beside SQLite with one worker: the engines and worker counts production runs.
ENGINE_ROWS = (("SQLite", 2), ("PostgreSQL", 1), ("PostgreSQL", 2))
PG_CATALOGUE_TARGET = 0.80   # a cached page should not touch the database


# --- the reference server ----------------------------------------------------------------

def serve_hello(port: int) -> None:
    """The reference: the least an aiohttp JSON endpoint can cost on this machine."""
    from aiohttp import web

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    app = web.Application()
    app.router.add_get("/", hello)
    web.run_app(app, host=HOST, port=port, access_log=None, print=None)


# --- processes -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@contextlib.contextmanager
def server(command: list[str], ready_url: str, log: Path, timeout: float = 30.0,
           env: dict[str, str] | None = None,
           cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server pinned to the server core, wait until `ready_url` answers 200, and stop
    it on the way out whatever happened.  Its output goes to `log` (a pipe nobody reads
    would fill and stall it) and is shown if it dies before becoming ready.  `env` and `cwd`
    run another build's code (orchestration/builds.py)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(["taskset", "-c", SERVER_CORE, *command], stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=cwd)
    try:
        deadline = time.monotonic() + timeout
        while not _ready(ready_url):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"server {command} not ready at {ready_url}:\n{tail}")
            time.sleep(0.1)
        yield proc
    finally:
        stop(proc)


def run_tool(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """A short-lived helper process (wrk, `xingcheng token`), bounded in time; its stderr
    goes into the error, so a failure or a hang says why instead of stalling the run."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        raise RuntimeError(f"{command} still running after {timeout:g}s:\n{stderr}") from exc
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed ({done.returncode}):\n{done.stderr}")
    return done


def cpu_ticks() -> dict[str, tuple[int, int]]:
    """Busy and total clock ticks of each core so far (/proc/stat)."""
    found = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            values = [int(v) for v in fields[:8]]
            idle = values[3] + values[4]  # idle + iowait
            found[name.removeprefix("cpu")] = (sum(values) - idle, sum(values))
    return found


def process_ticks(pid: int) -> int:
    """User + system clock ticks a process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


# --- wrk -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Load:
    """One request shape for wrk: what to send and which status counts as success."""
    url: str
    expect: int
    method: str = "GET"
    body: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    # Bearer tokens sent in turn, one a request: a crowd of customers, not one account that
    # risk control would (rightly) hold back.
    tokens: tuple[str, ...] = ()


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p99_ms: float
    requests: int
    unexpected: int  # responses whose status was not `Load.expect`
    socket_errors: str | None
    # Largest share of core 0 or 1 that neither the server nor wrk used during the run:
    # other tenants of this shared machine.  Above OTHER_CPU_WARNING the run is not clean.
    other_cpu: float = 0.0
    # The server's own CPU time per response: what a neighbour taking the core leaves alone
    # (it slows the clock, not the work), so it compares configurations on a busy machine.
    server_us_per_request: float = 0.0


def _lua_string(text: str) -> str:
    """A Lua long-bracket literal: no escaping rules to get wrong.  (Spaces go around one
    used as a table index, since `t[[` would open a long string.)"""
    if "]==]" in text:
        raise ValueError("text cannot go into a level-2 Lua long string")
    return f"[==[{text}]==]"


def lua_script(load: Load) -> str:
    """Request shape plus a per-status tally: wrk's own "Non-2xx" line would miss a 200
    where a 201 was due, so each response is checked against `expect` in Lua."""
    lines = [f"wrk.method = {_lua_string(load.method)}"]
    if load.body is not None:
        lines.append(f"wrk.body = {_lua_string(load.body)}")
    lines += [f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in load.headers]
    if load.tokens:
        lines.append("local tokens = {" + ",".join(_lua_string(t) for t in load.tokens) + "}")
        lines.append("""local turn = 0
function request()
  turn = turn % #tokens + 1
  wrk.headers["Authorization"] = "Bearer " .. tokens[turn]
  return wrk.format()
end""")
    lines.append(f"""
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) unexpected = 0 end
function response(status, headers, body)
  if status ~= {load.expect} then unexpected = unexpected + 1 end
end
function done(summary, latency, requests)
  local n = 0
  for _, thread in ipairs(threads) do n = n + thread:get("unexpected") end
  io.write(string.format("unexpected_status %d\\n", n))
end
""")
    return "\n".join(lines)


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(output: str) -> WrkResult:
    """The figures from wrk's text report (run with --latency and `lua_script`)."""
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise ValueError(f"no {pattern!r} in wrk output:\n{output}")
        return match

    p99 = find(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$")
    errors = re.search(r"^\s*Socket errors: (.+)$", output, re.MULTILINE)
    return WrkResult(
        requests_per_second=float(find(r"^Requests/sec:\s+([\d.]+)").group(1)),
        p99_ms=float(p99.group(1)) * _UNITS_MS[p99.group(2)],
        requests=int(find(r"^\s*(\d+) requests in ").group(1)),
        unexpected=int(find(r"^unexpected_status (\d+)$").group(1)),
        socket_errors=errors.group(1) if errors else None,
    )


def run_wrk(load: Load, seconds: float, connections: int, workdir: Path,
            server_pid: int) -> WrkResult:
    """One wrk run pinned to the load core, one thread (the other core is the server's),
    with the CPU that other processes took from either core meanwhile."""
    script = workdir / "load.lua"
    script.write_text(lua_script(load), encoding="utf-8")
    command = ["taskset", "-c", WRK_CORE, "wrk", "-t1", f"-c{connections}",
               f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script), load.url]
    cores, server, children = (cpu_ticks(), process_ticks(server_pid),
                               resource.getrusage(resource.RUSAGE_CHILDREN))
    done = run_tool(command, timeout=seconds + 60)
    if done.stderr.strip():  # wrk reports a broken script there, then runs without it
        raise RuntimeError(f"wrk complained: {done.stderr.strip()}")
    after, reaped = cpu_ticks(), resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_ticks = ((reaped.ru_utime + reaped.ru_stime - children.ru_utime - children.ru_stime)
                 * os.sysconf("SC_CLK_TCK"))
    own = {SERVER_CORE: process_ticks(server_pid) - server, WRK_CORE: wrk_ticks}
    other = max((after[core][0] - cores[core][0] - used)
                / max(1, after[core][1] - cores[core][1]) for core, used in own.items())
    result = parse_wrk(done.stdout)
    server_us = own[SERVER_CORE] / os.sysconf("SC_CLK_TCK") * 1e6
    return dataclasses.replace(result, other_cpu=max(0.0, other),
                               server_us_per_request=server_us / max(1, result.requests))


# --- the mall's data, through its API ------------------------------------------------------

def call(base: str, method: str, path: str, *, token: str | None = None,
         body: object = None) -> tuple[int, object]:
    """(status, parsed body) of one request; setup needs a handful, so stdlib is enough."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    text = raw.decode()
    return status, (json.loads(text) if text.lstrip().startswith(("{", "[")) else text)


def expect(base: str, method: str, path: str, status: int | tuple[int, ...], *,
           token: str | None = None, body: object = None) -> dict:
    got, reply = call(base, method, path, token=token, body=body)
    if got not in ((status,) if isinstance(status, int) else status):
        raise RuntimeError(f"{method} {path}: expected {status}, got {got}: {reply}")
    assert isinstance(reply, dict)
    return reply


@dataclass(frozen=True)
class Seeded:
    store_id: int
    sku_id: int
    customer_token: str


def new_mall(workdir: Path) -> tuple[str, list[str], str]:
    """A fresh mall database in `workdir`: the base URL its server will answer at, the
    command that serves it there (default configuration), and an operator's token."""
    db = workdir / "mall.db"
    operator = operator_token(db)
    port = free_port()
    command = [sys.executable, "-m", "xingcheng.cli", "serve", "--db", str(db),
               "--host", HOST, "--port", str(port)]
    return f"http://{HOST}:{port}", command, operator


def operator_token(db: Path | str) -> str:
    """Issued on the file before the server opens it, as an operator bootstraps a mall."""
    command = [sys.executable, "-m", "xingcheng.cli", "token", "--operator", "--db", str(db)]
    return run_tool(command, timeout=60).stdout.strip()


def seed(base: str, operator: str) -> Seeded:
    """One open-all-day store, its merchant, PRODUCTS products each with STOCK on hand,
    and one logged-in customer."""
    store = expect(base, "POST", "/api/v1/admin/stores", 201, token=operator, body={
        "name": "坡子街口味虾", "kind": "snacks", "district": "天心区",
        "business_circle": "五一广场", "lat": 28.1960, "lng": 112.9770,
        "opens_at": "00:00", "closes_at": "24:00"})
    store_id = store["store_id"]
    expect(base, "POST", f"/api/v1/admin/stores/{store_id}/staff", (200, 201), token=operator,
           body={"openid": "bench-merchant"})
    login = {"code": "sandbox:bench-merchant"}
    merchant = expect(base, "POST", "/api/v1/auth/wx-login", 200, body=login)["token"]
    shop = f"/api/v1/merchant/stores/{store_id}"
    sku_ids = [expect(base, "POST", f"{shop}/products", 201, token=merchant, body={
        "name": f"口味虾 {n}号", "price_fen": 1800 + n, "tags": ["夜宵"],
        "scenes": ["late_night"]})["sku_id"] for n in range(1, PRODUCTS + 1)]
    expect(base, "PUT", f"{shop}/inventory", 200, token=merchant,
           body={"items": [{"sku_id": sku, "stock": STOCK} for sku in sku_ids]})
    page = expect(base, "GET", f"/api/v1/stores/{store_id}/products", 200)
    if len(page["items"]) != PRODUCTS:
        raise RuntimeError(f"catalogue page has {len(page['items'])} items, not {PRODUCTS}")
    customer = expect(base, "POST", "/api/v1/auth/wx-login", 200,
                      body={"code": "sandbox:bench-customer"})["token"]
    return Seeded(store_id, sku_ids[0], customer)


def orders_created(base: str) -> int:
    """The mall's own count of created orders, to cross-check wrk's tally."""
    _, text = call(base, "GET", "/metrics")
    assert isinstance(text, str)
    for line in text.splitlines():
        if line.startswith(CREATED_SAMPLE + " "):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


# --- the run -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    name: str
    result: WrkResult
    target: str = "reference"
    met: bool | None = None


def warm_up(load: Load, args: argparse.Namespace, workdir: Path, server_pid: int) -> None:
    """Discarded load first: lazy imports, SQLite's page cache, pydantic and aiohttp's first
    calls, and TCP connections all settle before anything is counted."""
    if args.warmup > 0:
        run_wrk(load, args.warmup, args.connections, workdir, server_pid)


def measure(load: Load, args: argparse.Namespace, workdir: Path, server_pid: int
            ) -> WrkResult:
    warm_up(load, args, workdir, server_pid)
    return run_wrk(load, args.duration, args.connections, workdir, server_pid)


def benchmark(args: argparse.Namespace, workdir: Path
              ) -> tuple[list[Row], int, dict[str, float]]:
    """The rows, the orders the mall counted during the measured order run, and the median
    server CPU per catalogue request with the log ("default") and without it ("quiet")."""
    script = str(Path(__file__).resolve())
    port = free_port()
    hello_url = f"http://{HOST}:{port}/"
    with server([sys.executable, script, "--serve-hello", str(port)], hello_url,
                workdir / "hello.log") as hello:
        bare = measure(Load(hello_url, 200), args, workdir, hello.pid)

    base, command, operator = new_mall(workdir)
    # The default configuration (access log on, to a file as in real runs) and the same
    # catalogue request with --no-access-log, alternated over several restarts of the same
    # database.  Other tenants only ever slow a round down, so each figure is the best of its
    # rounds (as timeit takes the fastest); the server's CPU per request gives a second view.
    with server(command, f"{base}/readyz", workdir / "mall-seed.log"):
        seeded = seed(base, operator)
    customer = (("Authorization", f"Bearer {seeded.customer_token}"),)
    catalogue_load = Load(f"{base}/api/v1/stores/{seeded.store_id}/products", 200,
                          headers=customer)
    rounds: dict[str, list[WrkResult]] = {"default": [], "quiet": []}
    for number in range(args.rounds):
        for key, extra in (("default", []), ("quiet", ["--no-access-log"])):
            with server([*command, *extra], f"{base}/readyz",
                        workdir / f"mall-{key}-{number}.log") as mall:
                rounds[key].append(measure(catalogue_load, args, workdir, mall.pid))
    catalogue, unlogged = (max(rounds[k], key=lambda r: r.requests_per_second)
                           for k in ("default", "quiet"))
    cpu_per_request = {k: statistics.median(r.server_us_per_request for r in rounds[k])
                       for k in rounds}
    # One account placing thousands of orders a second is the flood risk control answers
    # with 429 (orders-per-account); the order path is what this row measures, so the
    # per-account limit is lifted for it (an empty rules file), and only for it.
    no_limits = workdir / "no-risk-rules.toml"
    no_limits.write_text("# the benchmark's one customer orders far beyond any real one\n")
    with server([*command, "--risk-rules", str(no_limits)], f"{base}/readyz",
                workdir / "mall.log") as mall:
        order = Load(f"{base}/api/v1/orders", 201, "POST", json.dumps({
            "store_id": seeded.store_id, "lines": [{"sku_id": seeded.sku_id, "qty": 1}],
            "fulfilment": "pickup"}), (("Content-Type", "application/json"), *customer))
        warm_up(order, args, workdir, mall.pid)
        before = orders_created(base)
        orders = run_wrk(order, args.duration, args.connections, workdir, mall.pid)
        created = orders_created(base) - before

    ratio = catalogue.requests_per_second / bare.requests_per_second
    log_cost = 1 - catalogue.requests_per_second / unlogged.requests_per_second
    engines = engine_rows(args, workdir, no_limits, catalogue.requests_per_second)
    return [
        Row("bare aiohttp JSON hello", bare,
            f"ref {BARE_REFERENCE[0] / 1000:g}k-{BARE_REFERENCE[1] / 1000:g}k/s",
            bare.requests_per_second >= BARE_REFERENCE[0]),
        Row("GET /stores/{id}/products (20 items)", catalogue,
            f">= {CATALOGUE_RATIO_TARGET:.0%} of bare", ratio >= CATALOGUE_RATIO_TARGET),
        Row("  same, --no-access-log", unlogged,
            f"log costs <= {ACCESS_LOG_COST_TARGET:.0%}", log_cost <= ACCESS_LOG_COST_TARGET),
        Row("POST /orders (pickup, 1 line)", orders, f">= {ORDERS_PER_SECOND_TARGET:,.0f}/s",
            orders.requests_per_second >= ORDERS_PER_SECOND_TARGET),
        *engines,
    ], created, cpu_per_request


def engine_rows(args: argparse.Namespace, workdir: Path, no_limits: Path,
                sqlite_catalogue: float) -> list[Row]:
    """The same two requests, default configuration, on SQLite with 2 workers and on
    PostgreSQL (the local server, a database made for the run and dropped) with 1 and 2:
    each mall seeded through its API as the first one was."""
    rows = []
    for engine, workers in ENGINE_ROWS:
        if engine == "SQLite":
            db: Path | str = workdir / f"mall-{workers}-workers.db"
        else:
            db = asyncio.run(postgres_databases.create(LOCAL_SERVER, "throughput"))
        try:
            operator = operator_token(db)
            port = free_port()
            base = f"http://{HOST}:{port}"
            command = [sys.executable, "-m", "xingcheng.cli", "serve", "--db", str(db),
                       "--host", HOST, "--port", str(port), "--workers", str(workers)]
            with server(command, f"{base}/readyz", workdir / f"{engine}-{workers}-seed.log"):
                seeded = seed(base, operator)
            customer = (("Authorization", f"Bearer {seeded.customer_token}"),)
            with server([*command, "--risk-rules", str(no_limits)], f"{base}/readyz",
                        workdir / f"{engine}-{workers}.log") as mall:
                catalogue = measure(Load(f"{base}/api/v1/stores/{seeded.store_id}/products",
                                         200, headers=customer), args, workdir, mall.pid)
                orders = measure(Load(f"{base}/api/v1/orders", 201, "POST", json.dumps({
                    "store_id": seeded.store_id, "lines": [{"sku_id": seeded.sku_id,
                                                            "qty": 1}],
                    "fulfilment": "pickup"}), (("Content-Type", "application/json"),
                                               *customer)), args, workdir, mall.pid)
        finally:
            if isinstance(db, str):
                asyncio.run(postgres_databases.drop(db))
        label = f"{engine}, {workers} worker{'s' if workers > 1 else ''}"
        versus = catalogue.requests_per_second / sqlite_catalogue
        rows += [Row(f"GET products: {label}", catalogue,
                     f"{versus:.0%} of SQLite's; PostgreSQL >= 80%",
                     versus >= PG_CATALOGUE_TARGET if engine == "PostgreSQL" else None),
                 Row(f"POST /orders: {label}", orders, "beside SQLite's", None)]
    return rows


def print_rows(rows: list[Row], bare: float) -> None:
    """The table of rows, each beside the bare figure measured in the same run."""
    name, target = max(len(row.name) for row in rows), max(len(row.target) for row in rows)
    print(f"{'name':<{name}} {'req/s':>9} {'p99 ms':>8} {'vs bare':>8} {'bad':>5} {'other':>6} "
          f"{'cpu us':>7}  {'target':<{target}} met?")
    for row in rows:
        r = row.result
        met = "-" if row.met is None else ("yes" if row.met else "NO")
        print(f"{row.name:<{name}} {r.requests_per_second:>9,.0f} {r.p99_ms:>8.2f} "
              f"{r.requests_per_second / bare:>7.0%} {r.unexpected:>5} {r.other_cpu:>6.0%} "
              f"{r.server_us_per_request:>7.1f}  {row.target:<{target}} {met}")


def report(rows: list[Row], created: int, cpu_per_request: dict[str, float],
           args: argparse.Namespace) -> None:
    bare = rows[0].result.requests_per_second
    print(f"wrk -t1 -c{args.connections} -d{args.duration:g}s; server on core {SERVER_CORE}, "
          f"wrk on core {WRK_CORE}")
    print_rows(rows, bare)
    print("bad = responses with another status than expected (200 for GETs, 201 for orders)")
    print("other = most CPU another process took from the server's or wrk's core meanwhile")
    print("cpu us = the server's own CPU time per response")
    if any(row.result.other_cpu > OTHER_CPU_WARNING for row in rows):
        print(f"WARNING: other processes took over {OTHER_CPU_WARNING:.0%} of a core during a "
              "run; its figures are depressed, measure again on a quiet machine")
    if rows[0].met is False:
        print("the bare figure is below this machine kind's reference: the machine is busy or "
              "slow, so read the ratios rather than the absolute figures")
    for row in rows:
        if row.result.socket_errors:
            print(f"socket errors, {row.name}: {row.result.socket_errors}")
    logged, unlogged = rows[1].result, rows[2].result
    print(f"catalogue rows: the best of {args.rounds} alternating rounds each")
    print(f"access log (on by default) costs "
          f"{1 - logged.requests_per_second / unlogged.requests_per_second:.1%} of the "
          f"catalogue's throughput ({logged.requests_per_second:,.0f} vs "
          f"{unlogged.requests_per_second:,.0f} req/s with --no-access-log)")
    with_log, without = cpu_per_request["default"], cpu_per_request["quiet"]
    print(f"by the server's CPU per request (median of the rounds, unmoved by neighbours): "
          f"{1 - without / with_log:.1%} ({with_log:.1f} vs {without:.1f} us)")
    orders = rows[-1].result
    print(f"orders: wrk counted {orders.requests:,} responses "
          f"({orders.requests - orders.unexpected:,} of them 201); "
          f"the mall's {CREATED_SAMPLE} rose by {created:,} (it also counts the up to "
          f"{args.connections} orders in flight when wrk stopped)")


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM becomes SystemExit so the `finally` blocks stop the servers."""
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of the catalogue with and without the log")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds of discarded load before each run (0: none)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (database, server logs, Lua script)")
    parser.add_argument("--serve-hello", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_hello is not None:
        serve_hello(args.serve_hello)
        return
    for tool in ("taskset", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install {tool})")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="mall-throughput-"))
    try:
        rows, created, cpu_per_request = benchmark(args, workdir)
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(rows, created, cpu_per_request, args)


if __name__ == "__main__":
    main()
