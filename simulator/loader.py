"""Writing a built city into the mall's database through the mall's storage layer:
bulk inserts in one transaction, with a progress bar per table."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from itertools import islice
from pathlib import Path

from mall import keys
from mall.privacy import Vault
from mall.storage import bulk, search_index, settings
from mall.storage.engines import database_for
from shared.clock import SHANGHAI, Clock

from .city import City
from .members import table_rows as member_rows

FOUNDED = datetime(2026, 1, 1, tzinfo=SHANGHAI)  # created_at of generated rows: replayable
CHUNK = 50_000


CITY_KEY = "simulated_city"  # settings entry recording which city the database holds


def manifest(city: City) -> dict:
    return {"preset": city.preset.name, "seed": city.seed,
            "sizes": {"stores": city.preset.stores, "customers": city.preset.customers,
                      "skus_per_store": city.preset.skus_per_store,
                      "daily_orders": city.preset.daily_orders},
            "counts": city.counts()}


async def read_manifest(db_path: Path) -> dict | None:
    """The manifest of the city loaded into a database, if any."""
    db = database_for(db_path, Clock(), read_connections=1)
    await db.open()
    try:
        text = await settings.get(db.reader(), CITY_KEY)
    finally:
        await db.close()
    return json.loads(text) if text else None


class CityExists(Exception):
    """The database already holds stores, products or users."""


def _chunks(rows: Iterable[tuple], size: int = CHUNK) -> Iterator[list[tuple]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def table_rows(city: City, vault: Vault, stamp: str) -> dict[str, tuple[int, Iterable[tuple]]]:
    """(row count, rows) per mall table, in insertion order."""
    stores, customers, pools = city.stores, city.customers, city.pools
    sealed = [vault.seal({"phone": phone}) for phone in pools.phones]  # once per pool phone
    first_merchant = len(customers) + 1
    products = [(s, p) for s in stores for p in s.products]
    skus = [(s, p, k) for s, p in products for k in p["skus"]]
    return {
        "stores": (len(stores), ((s.id, s.name, s.kind, s.district_code, s.place, s.lat, s.lng,
                                  s.opens_at, s.closes_at, stamp) for s in stores)),
        "pickup_points": (len(stores), ((s.id, s.id, "counter", f"{s.name} 门店柜台", s.lat,
                                         s.lng, stamp) for s in stores)),
        "users": (len(customers) + len(stores), _users(city, sealed, first_merchant, stamp)),
        "store_staff": (len(stores), ((first_merchant + i, s.id, stamp)
                                      for i, s in enumerate(stores))),
        "products": (len(products), ((p["product_id"], s.id, p["name"], "", stamp)
                                     for s, p in products)),
        "product_tags": (sum(len(p["tags"]) for _, p in products),
                         ((p["product_id"], t) for _, p in products for t in p["tags"])),
        "product_scenes": (sum(len(p["scenes"]) for _, p in products),
                           ((p["product_id"], t) for _, p in products for t in p["scenes"])),
        "skus": (len(skus), ((k["sku_id"], p["product_id"], k["spec"], k["price_fen"], stamp)
                             for _, p, k in skus)),
        "inventory": (len(skus), ((s.id, k["sku_id"], k["stock"], stamp) for s, _, k in skus)),
        **member_rows(city, stamp),
    }


def _users(city: City, sealed: list[bytes], first_merchant: int, stamp: str
           ) -> Iterator[tuple]:
    customers, pools = city.customers, city.pools
    for index, openid in enumerate(customers.openids):
        person = customers.person[index]
        yield (index + 1, openid, "customer", pools.masked_names[person],
               pools.masked_phones[person], sealed[person], stamp)
    for offset, store in enumerate(city.stores):
        yield (first_merchant + offset, store.merchant_openid, "customer", None, None, None,
               stamp)


async def load(city: City, db_path: Path,
               on_progress: Callable[[str, int, int], None] = lambda table, done, total: None
               ) -> dict[str, int]:
    """Load the city into a new (or empty) mall database; returns rows per table."""
    clock = Clock(FOUNDED, speed=1.0)
    db = database_for(db_path, clock, read_connections=1)
    await db.open()
    try:

        async def prepare(conn) -> keys.Keys:
            if not await bulk.is_empty(conn):
                raise CityExists(f"{db_path} already holds a city or shop data")
            return await keys.load(conn)

        server_keys = await db.transaction(prepare)
        stamp = clock.stamp(FOUNDED)
        counts: dict[str, int] = {}

        async def insert_all(conn) -> None:
            for table, (total, rows) in table_rows(city, Vault(server_keys.vault_key),
                                                   stamp).items():
                done = 0
                on_progress(table, done, total)
                for chunk in _chunks(rows):
                    await bulk.insert(conn, table, chunk)
                    done += len(chunk)
                    on_progress(table, done, total)
                counts[table] = done
            await bulk.open_ledger(conn)
            await search_index.reindex(conn)   # the products as the triggers noted them
            await settings.put(conn, CITY_KEY, json.dumps(manifest(city), ensure_ascii=False))

        await db.transaction(insert_all, long=True)
        await db.after_bulk_load()
    finally:
        await db.close()
    return counts
