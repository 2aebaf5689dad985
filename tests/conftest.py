"""Fixtures: a real mall on a real socket over a real SQLite file, and a store set up
through the API the way an operator and a merchant would."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from mall.app import create_app
from mall.config import MallConfig
from mall.services.registry import SERVICES
from mall.storage import postgres_databases
from mall.storage.engines import read_only
from paysandbox.app import PayerConfig
from paysandbox.app import create_app as create_payer
from shared.clock import Clock

from .api import Api

WULI = (28.1960, 112.9770)  # 五一广场
PG_SERVER = postgres_databases.LOCAL_SERVER


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full", action="store_true",
                     help="run the slow tier too (real Locust runs, Chromium, Prometheus, "
                          "crash rounds): what .ci/run runs")
    parser.addoption("--engine", choices=("sqlite", "postgresql"), default="sqlite",
                     help="the engine under the tests' malls: a SQLite file each, or a "
                          f"PostgreSQL database each, created and dropped on {PG_SERVER}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`pytest` is the fast tier a developer runs after every change; a test marked slow is
    skipped there, with the command that runs it, not dropped.  One marked several_seconds
    is skipped there too, but runs in both passes of the full suite (`pytest --full`, and
    `pytest --engine postgresql`, whose malls it exercises on the other engine)."""
    later = pytest.mark.skip(reason="slow tier: `pytest --full` runs it")
    sqlite = pytest.mark.skip(reason="about SQLite itself (its file, its write lock)")
    on_postgresql = config.getoption("--engine") == "postgresql"
    fast = not config.getoption("--full") and not on_postgresql
    for item in items:
        if item.get_closest_marker("slow") and not config.getoption("--full"):
            item.add_marker(later)
        if item.get_closest_marker("several_seconds") and fast:
            item.add_marker(later)
        if on_postgresql and item.get_closest_marker("sqlite_only"):
            item.add_marker(sqlite)


@pytest.fixture(scope="session")
def env(tmp_path_factory) -> dict:
    """The environment of `xingcheng` subprocesses: one city cache for the whole session, so
    each preset city is generated once, by the first run that needs it."""
    cache = tmp_path_factory.mktemp("cache")
    return {**os.environ, "XINGCHENG_CACHE": str(cache)}


@pytest.fixture
async def new_database(request, tmp_path):
    """Databases for malls, on the engine the run chose (`--engine`): a file in the test's
    folder, or a PostgreSQL database made for this test and dropped after it."""
    made: list[str] = []

    async def new(name: str, engine: str | None = None) -> Path | str:
        if (engine or request.config.getoption("--engine")) == "sqlite":
            return tmp_path / f"{name}.db"
        url = await postgres_databases.create(PG_SERVER, f"test_{name}")
        made.append(url)
        return url

    yield new
    for url in made:
        await postgres_databases.drop(url)


async def rows_of(target: Path | str, sql: str, *params) -> list[tuple]:
    """Rows of a statement on a mall's database, read beside the mall (or after it), on
    either engine."""
    conn = await read_only(target)
    try:
        return [tuple(row) for row in await conn.execute_fetchall(sql, params)]
    finally:
        await conn.close()


def stored_bytes(target: Path | str) -> bytes:
    """Everything the database keeps, as stored: a SQLite file with its WAL, or what
    pg_dump reads out of a PostgreSQL database."""
    if isinstance(target, Path):
        return b"".join(path.read_bytes() for path in sorted(target.parent.glob(target.name + "*"))
                        if not path.name.endswith("-shm"))   # (an index of the WAL, no data)
    dump = subprocess.run(["pg_dump", "--data-only", target], capture_output=True,
                          check=True, timeout=60).stdout
    # less the \restrict lines, whose key is new at every dump
    return b"\n".join(line for line in dump.split(b"\n") if b"restrict " not in line[:12])


@pytest.fixture(scope="session")
def session_databases():
    """PostgreSQL databases kept for the whole session (snapshots copied by several tests),
    dropped at its end."""
    kept: list[str] = []
    yield kept
    for url in kept:
        asyncio.run(postgres_databases.drop(url))


@pytest.fixture
async def copy_database(tmp_path):
    """Copies of a mall's database to break on purpose: a file copied by SQLite's backup, or
    a PostgreSQL database made from it as a template; the copies are dropped after the test."""
    made: list[str] = []

    async def copy(source: Path | str, name: str) -> Path | str:
        if isinstance(source, Path):
            target = tmp_path / f"{name}.db"
            with closing(sqlite3.connect(source)) as data, closing(sqlite3.connect(target)) as to:
                data.backup(to)
            return target
        url = await postgres_databases.create(postgres_databases.split(source)[0], name,
                                              template=source)
        made.append(url)
        return url

    yield copy
    for url in made:
        await postgres_databases.drop(url)


async def execute_on(target: Path | str, statement: str) -> None:
    """A statement written straight into a database no mall is serving."""
    if isinstance(target, Path):
        with closing(sqlite3.connect(target)) as conn, conn:
            conn.execute(statement)
        return
    conn = await asyncpg.connect(target)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@dataclass
class Mall:
    api: Api
    server: TestServer
    config: MallConfig
    payer: Api   # the payment sandbox this mall's customers pay through
    payer_db: Path

    @property
    def services(self):
        return self.server.app[SERVICES]

    async def sql(self, statement: str, *params) -> list:
        """A statement run on the mall's database beside the mall (as an operator's shell
        would), on either engine: its rows."""
        return list(await self.services.db.transaction(
            lambda conn: conn.execute_fetchall(statement, params)))

    async def operator_token(self) -> str:
        return (await self.services.accounts.operator_token("ops"))["token"]


@pytest.fixture
async def start_payer(tmp_path):
    """Start payment sandboxes (real apps on real sockets, each on its own file)."""
    started: list[TestServer] = []

    async def start(port: int | None = None, **settings) -> TestServer:
        settings.setdefault("db_path", tmp_path / f"payer{len(started)}.db")
        settings.setdefault("keys_path", tmp_path / "payment-keys.json")
        server = TestServer(create_payer(PayerConfig(**settings)), host="127.0.0.1",
                            port=port)
        server.db_path = settings["db_path"]   # the payer's own books: always SQLite
        await server.start_server()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.close()


@pytest.fixture
async def start_mall(tmp_path, start_payer, new_database):
    """Start malls with chosen settings (clock, expiry, ...), each paying through a payment
    sandbox of its own unless `payer=` names one; all stopped at the end."""
    started: list[tuple[TestServer, aiohttp.ClientSession]] = []

    no_rules = tmp_path / "no-risk-rules.toml"
    no_rules.write_text("# tests of other things place many orders from one account\n")

    async def start(payer: TestServer | None = None, **settings) -> Mall:
        if "db_path" not in settings:
            settings["db_path"] = await new_database(f"mall{len(started)}")
        settings.setdefault("risk_rules", no_rules)
        settings.setdefault("expiry_sweep_interval", 0.05)
        # The tests' clients share the mall's event loop, so their own work would count as
        # the mall's queue and be shed; shedding is tested on its own (test_shedding.py).
        settings.setdefault("shed_target_seconds", None)
        if payer is None:
            payer = await start_payer(clock=settings.get("clock") or Clock())
        settings.setdefault("payer_url", str(payer.make_url("")).rstrip("/"))
        settings.setdefault("payer_keys", tmp_path / "payment-keys.json")
        config = MallConfig(**settings)
        server = TestServer(create_app(config), host="127.0.0.1")
        await server.start_server()
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=400))
        started.append((server, session))
        return Mall(Api(str(server.make_url("/")), session), server, config,
                    Api(str(payer.make_url("/")), session), payer.db_path)

    yield start
    for server, session in started:
        await session.close()
        await server.close()


@pytest.fixture
async def mall(start_mall) -> Mall:
    return await start_mall()


@dataclass
class Shop:
    store_id: int
    counter_id: int
    sku_id: int
    product_id: int
    price_fen: int
    merchant: str
    operator: str


async def open_shop(mall: Mall, *, stock: int = 10, price_fen: int = 1800,
                    merchant_openid: str = "merchant-1", name: str = "坡子街口味虾",
                    lat: float = WULI[0], lng: float = WULI[1], hours=("00:00", "24:00"),
                    district: str = "天心区", circle: str = "五一广场") -> Shop:
    api = mall.api
    operator = await mall.operator_token()
    store = await api.post("/api/v1/admin/stores", token=operator, json={
        "name": name, "kind": "snacks", "district": district, "business_circle": circle,
        "lat": lat, "lng": lng, "opens_at": hours[0], "closes_at": hours[1]})
    assert store.status == 201, store.body
    store_id = store.body["store_id"]
    staff = await api.post(f"/api/v1/admin/stores/{store_id}/staff", token=operator,
                           json={"openid": merchant_openid})
    assert staff.status in (200, 201), staff.body
    merchant = await api.login(merchant_openid)
    product = await api.post(f"/api/v1/merchant/stores/{store_id}/products", token=merchant,
                             json={"name": "口味虾 中份", "price_fen": price_fen,
                                   "tags": ["夜宵"], "scenes": ["late_night"]})
    assert product.status == 201, product.body
    sku_id = product.body["sku_id"]
    level = await api.put(f"/api/v1/merchant/stores/{store_id}/inventory/{sku_id}",
                          token=merchant, json={"stock": stock})
    assert level.status == 200, level.body
    return Shop(store_id, store.body["pickup_point_id"], sku_id, product.body["product_id"],
                price_fen, merchant, operator)


@pytest.fixture
async def shop(mall) -> Shop:
    return await open_shop(mall)


def window(mall: Mall, start_min: float = -60, end_min: float = 24 * 60) -> dict:
    """A campaign's window around the mall clock's now, in simulated minutes."""
    now = mall.services.clock.now()
    return {"starts_at": (now + timedelta(minutes=start_min)).isoformat(),
            "ends_at": (now + timedelta(minutes=end_min)).isoformat()}


def order_body(shop: Shop, qty: int = 1, **extra) -> dict:
    return {"store_id": shop.store_id, "lines": [{"sku_id": shop.sku_id, "qty": qty}],
            "fulfilment": "pickup", **extra}


async def paid_order(mall: Mall, shop: Shop, customer: str, qty: int = 1, **extra) -> int:
    """An order paid through the sandbox payer, waiting until the notification lands."""
    api = mall.api
    order = await api.post("/api/v1/orders", token=customer,
                           json=order_body(shop, qty, **extra))
    assert order.status == 201, order.body
    order_id = order.body["order_id"]
    pay = await api.post(f"/api/v1/orders/{order_id}/pay", token=customer)
    assert pay.status == 201, pay.body
    done = await mall.payer.post(f"/sandbox/payments/{pay.body['prepay_id']}/complete",
                                 json={"result": "success"})
    assert done.status == 202, done.body
    await wait_until_paid(api, customer, order_id)
    return order_id


async def wait_until_paid(api: Api, customer: str, order_id: int) -> None:
    """Until the payer's notification has landed and the order reads paid (2 s at most)."""
    for _ in range(200):
        view = await api.get(f"/api/v1/orders/{order_id}", token=customer)
        if view.body["status"] == "paid":
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"order {order_id} never became paid: {view.body}")


__all__ = ["Clock", "Mall", "Shop", "open_shop", "order_body", "paid_order", "wait_until_paid",
           "window"]
