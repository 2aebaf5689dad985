"""The simulated city: deterministic from its seed, inside its districts, and servable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import asyncpg
import pytest

from mall.verification import verify
from simulator import tables
from simulator.city import build_city
from simulator.export import export
from simulator.geography import territory
from simulator.loader import CityExists, load, read_manifest

from .conftest import Clock

SMALL = tables.presets()["small"]


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes_other_seed_other_city(tmp_path):
    first = digest(Path(export(build_city(SMALL, 7), tmp_path / "a")[0]).parent)
    again = digest(Path(export(build_city(SMALL, 7), tmp_path / "b")[0]).parent)
    other = digest(Path(export(build_city(SMALL, 8), tmp_path / "c")[0]).parent)
    assert first == again
    assert set(first) == {"city.json", "stores.csv", "products.csv", "customers.csv"}
    for name in ("stores.csv", "products.csv", "customers.csv"):
        assert first[name] != other[name], name


def test_exports_mask_personal_data(tmp_path):
    export(build_city(SMALL, 7), tmp_path)
    lines = (tmp_path / "customers.csv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    for line in lines[1:50]:
        row = dict(zip(header, line.split(","), strict=True))
        assert "****" in row["phone"] and len(row["phone"]) == 11
        assert row["name"].endswith("*")


def test_every_store_and_customer_lies_in_its_district():
    land = territory()
    for place in land.places:
        assert land.district_of(*place.at) == place.district, place.name
    city = build_city(SMALL, 11, customers=20_000)
    for store in city.stores:
        assert land.district_of(store.lat, store.lng) == store.district, store
    customers = city.customers
    for i in range(len(customers)):
        district = city.district_names[customers.district[i]]
        assert land.district_of(customers.lat[i], customers.lng[i]) == district


def test_sizes_and_catalogues_follow_the_preset():
    city = build_city(SMALL, 7)
    assert len(city.stores) == SMALL.stores and len(city.customers) == SMALL.customers
    assert all(store.sku_count == SMALL.skus_per_store for store in city.stores)
    prices = [k["price_fen"] for s in city.stores for p in s.products for k in p["skus"]]
    assert all(isinstance(p, int) and p > 0 and p % 10 == 0 for p in prices)
    sku_ids = [k["sku_id"] for s in city.stores for p in s.products for k in p["skus"]]
    assert sku_ids == list(range(1, len(sku_ids) + 1))
    kinds = {s.kind for s in city.stores}
    assert {"snacks", "milk_tea", "convenience"} <= kinds


def test_persona_shares_within_one_percent_at_district_size():
    city = build_city(tables.presets()["district"], 7, stores=10, skus_per_store=1)
    counts = city.counts()["customers_by_persona"]
    total = sum(counts.values())
    for persona in tables.personas():
        assert abs(counts[persona.key] / total - persona.share) < 0.01, persona.key


async def test_a_generated_city_is_served_by_the_mall(tmp_path, start_mall):
    db = tmp_path / "city.db"
    city = build_city(SMALL, 7)
    counts = await load(city, db)
    assert counts["stores"] == 30 and counts["skus"] == 600
    assert (await read_manifest(db))["seed"] == 7
    with pytest.raises(CityExists):
        await load(city, db)
    mall = await start_mall(db_path=db, clock=Clock.parse("2026-11-27T12:00+08:00"))
    store = city.stores[0]
    nearby = await mall.api.get("/api/v1/stores", params={"lat": store.lat, "lng": store.lng,
                                                          "radius_km": 1})
    found = nearby.body["items"][0]
    assert (found["id"], found["name"], found["distance_km"]) == (store.id, store.name, 0)
    assert found["district"] == store.district
    catalogue = await mall.api.get(f"/api/v1/stores/{store.id}/products", params={"limit": 50})
    served = {(p["name"], k["sku_id"], k["price_fen"], k["available"])
              for p in catalogue.body["items"] for k in p["skus"]}
    generated = {(p["name"], k["sku_id"], k["price_fen"], k["stock"])
                 for p in store.products for k in p["skus"]}
    assert served == generated
    # The store's generated merchant works there.
    merchant = await mall.api.login(store.merchant_openid)
    queue = await mall.api.get(f"/api/v1/merchant/stores/{store.id}/pickup-queue",
                               token=merchant)
    assert queue.status == 200


async def test_the_city_brings_its_members_and_the_mall_keeps_their_points(tmp_path,
                                                                          start_mall):
    """Members before day one: by persona share, their level as the mall's file sets it,
    an opening ledger row each; a member then earns on top of what the city gave."""
    db = tmp_path / "city.db"
    city = build_city(SMALL, 7)
    counts = await load(city, db)
    by_persona = city.customer_ids_by_persona()
    assert 0 < counts["members"] == counts["points_ledger"] < len(city.customers)
    mall = await start_mall(db_path=db, clock=Clock.parse("2026-11-27T12:00+08:00"))
    rows = await mall.services.db.reader().execute_fetchall(
        "SELECT user_id, level, points, spent_fen FROM members")
    shares = {key: sum(1 for r in rows if r["user_id"] in set(ids)) / len(ids)
              for key, ids in by_persona.items() if len(ids) > 100}
    personas = {p.key: p for p in tables.personas()}
    for key, share in shares.items():
        assert abs(share - personas[key].member_share) < 0.12, (key, share)
    rules = mall.services.membership.rules
    assert all(r["level"] == rules.level_for(r["spent_fen"]).key for r in rows)
    member = rows[0]
    openid = city.customers.openids[member["user_id"] - 1]
    token = await mall.api.login(openid)
    mine = await mall.api.get("/api/v1/me/membership", token=token)
    assert (mine.body["points"], mine.body["spent_fen"]) == (member["points"],
                                                             member["spent_fen"])
    findings = {f.name: f for f in await verify(db)}
    assert findings["points_match_ledger"].holds


async def test_a_city_loaded_into_postgresql_leaves_its_empty_tables_planned_by_index(
        new_database):
    """Orders, payments and order lines start empty and grow all through a crest.  The
    mall's statements are prepared once per connection, and PostgreSQL settles on a generic
    plan after five runs; planned over a table it believed empty, that plan read the whole
    table for every order looked up by id, for as long as the connection lived."""
    target = await new_database("city_plans")
    if isinstance(target, Path):
        pytest.skip("about PostgreSQL's planner (`--engine postgresql`)")
    await load(build_city(SMALL, 7), target)
    conn = await asyncpg.connect(target)
    try:
        plans = {}
        for table, column in (("orders", "id"), ("order_lines", "order_id"),
                              ("payments", "order_id"), ("inventory_ledger", "order_id")):
            await conn.execute(f"PREPARE q_{table} (bigint) AS"
                               f" SELECT * FROM {table} WHERE {column} = $1")
            for key in range(6):   # the five custom plans, then the generic one
                await conn.execute(f"EXECUTE q_{table} ({key})")
            plan = await conn.fetchval(f"EXPLAIN EXECUTE q_{table} (1)")
            plans[table] = plan.split("  ")[0]
    finally:
        await conn.close()
    assert not [plan for plan in plans.values() if plan.startswith("Seq Scan")], plans
