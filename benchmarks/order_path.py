"""What one order costs the database: SQL statements and trips to a thread, per request, for
the order path as the load walks it (login, then orders with an Idempotency-Key; pickup with
one line, delivery with two), counted inside a real mall on a real socket.

    python benchmarks/order_path.py                   # this checkout
    PYTHONPATH=/path/to/other/checkout python benchmarks/order_path.py   # another build

Counted by wrapping what every build since the single writer thread has: the statements of
`SyncConnection` (the writer thread's, and the event loop's own where a build has them),
aiosqlite's hop to its reader threads, and `Database._in_writer` (a trip to the writer
thread).  The figures are exact counts, not timings, so a busy machine does not move them."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

import aiohttp
import aiosqlite
from aiohttp.test_utils import TestServer

from mall.app import create_app
from mall.config import MallConfig
from mall.services.registry import SERVICES
from mall.storage import database

COUNTS: Counter = Counter()
ORDERS = 50


def _count_statements() -> None:
    for name in ("execute", "execute_fetchall", "executemany"):
        original = getattr(database.SyncConnection, name)

        def counted(self, sql, parameters=(), _original=original):
            where = "loop" if threading.current_thread() is threading.main_thread() else "writer"
            COUNTS[f"statements on the {where}"] += 1
            return _original(self, sql, parameters)
        setattr(database.SyncConnection, name, counted)
    hop = aiosqlite.Connection._execute

    async def reader_hop(self, fn, *args, **kwargs):
        COUNTS["statements in reader threads"] += 1
        COUNTS["trips to reader threads"] += 1
        return await hop(self, fn, *args, **kwargs)
    aiosqlite.Connection._execute = reader_hop
    in_writer = database.Database._in_writer

    async def writer_trip(self, function, *args):
        COUNTS["trips to the writer thread"] += 1
        return await in_writer(self, function, *args)
    database.Database._in_writer = writer_trip


async def call(session, base, method, path, token=None, json=None, headers=None) -> dict:
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with session.request(method, base + path, json=json, headers=headers) as reply:
        body = await reply.json()
        if reply.status >= 300:
            raise RuntimeError(f"{method} {path}: {reply.status} {body}")
        return body


async def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="order-path-"))
    rules = folder / "no-rules.toml"
    rules.write_text("# one customer orders many times here\n")
    app = create_app(MallConfig(db_path=folder / "mall.db", risk_rules=rules,
                                access_log=False, expiry_sweep_interval=3600))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    v1 = "/api/v1"
    try:
        async with aiohttp.ClientSession() as s:
            ops = (await app[SERVICES].accounts.operator_token("bench"))["token"]
            store = await call(s, base, "POST", f"{v1}/admin/stores", ops, {
                "name": "坡子街口味虾", "kind": "snacks", "district": "天心区",
                "business_circle": "五一广场", "lat": 28.196, "lng": 112.977,
                "opens_at": "00:00", "closes_at": "24:00"})
            shop = f"{v1}/merchant/stores/{store['store_id']}"
            await call(s, base, "POST", f"{v1}/admin/stores/{store['store_id']}/staff", ops,
                       {"openid": "bench-merchant"})
            merchant = (await call(s, base, "POST", f"{v1}/auth/wx-login",
                                   json={"code": "sandbox:bench-merchant"}))["token"]
            skus = [(await call(s, base, "POST", f"{shop}/products", merchant,
                                {"name": f"口味虾 {n}号", "price_fen": 1800 + n}))["sku_id"]
                    for n in range(2)]
            await call(s, base, "PUT", f"{shop}/inventory", merchant,
                       {"items": [{"sku_id": sku, "stock": 100_000} for sku in skus]})
            customer = (await call(s, base, "POST", f"{v1}/auth/wx-login",
                                   json={"code": "sandbox:bench-customer"}))["token"]
            address = await call(s, base, "POST", f"{v1}/me/addresses", customer, {
                "contact_name": "张三", "phone": "13800001234", "district": "天心区",
                "detail": "坡子街 1 号", "lat": 28.195, "lng": 112.978})
            shapes = {
                "pickup, 1 line": {"store_id": store["store_id"], "fulfilment": "pickup",
                                   "lines": [{"sku_id": skus[0], "qty": 1}]},
                "delivery, 2 lines": {"store_id": store["store_id"], "fulfilment": "delivery",
                                      "address_id": address["id"],
                                      "lines": [{"sku_id": sku, "qty": 1} for sku in skus]},
            }
            print(f"{ORDERS} orders of each shape, each with an Idempotency-Key")
            print("| request | " + " | ".join(
                ("statements on the loop", "statements on the writer",
                 "statements in reader threads", "trips to the writer thread",
                 "trips to reader threads")) + " |")
            print("|---|---|---|---|---|---|")
            COUNTS.clear()
            for n in range(ORDERS):
                await call(s, base, "POST", f"{v1}/auth/wx-login",
                           json={"code": f"sandbox:new-customer-{n}"})
            _print_row("login (a new customer)", ORDERS)
            for name, body in shapes.items():
                COUNTS.clear()
                for n in range(ORDERS):
                    await call(s, base, "POST", f"{v1}/orders", customer, body,
                               {"Idempotency-Key": f"{name}-{n}"})
                _print_row(f"create_order ({name})", ORDERS)
    finally:
        await server.close()


def _print_row(name: str, requests: int) -> None:
    keys = ("statements on the loop", "statements on the writer",
            "statements in reader threads", "trips to the writer thread",
            "trips to reader threads")
    print(f"| {name} | " + " | ".join(f"{COUNTS[k] / requests:g}" for k in keys) + " |")


if __name__ == "__main__":
    print(f"mall from {Path(database.__file__).resolve().parent.parent.parent}", file=sys.stderr)
    _count_statements()
    asyncio.run(main())
