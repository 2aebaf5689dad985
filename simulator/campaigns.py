"""The campaigns the city's merchants and operators run in a window of simulated time (flash
sales, coupons, group buys) and their standing member prices, staged into a copy of the
city's database through the mall's storage layer before the load starts.

They are drawn from the city's seed, the day and the city's own shelves, so the same scenario
stages the same campaigns every run.  Rows name no creator (`created_by` NULL: the city's own
campaigns, as for its stores and products), so `xingcheng verify` looks for no audit rows."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from mall.opening_hours import is_open
from mall.storage import bulk, coupons, flash_sales, group_buys, membership
from mall.storage.database import Connection
from mall.storage.engines import database_for
from shared.clock import SHANGHAI, Clock

from . import tables
from .loader import FOUNDED


@dataclass(frozen=True)
class Run:
    """One day's run of a daily campaign."""
    day: datetime
    starts: datetime
    ends: datetime


@dataclass(frozen=True)
class Offer:
    """A store's SKU a campaign sells: the one it holds most of, at a price of its own."""
    store_id: int
    sku_id: int
    list_price_fen: int
    available: int


@dataclass
class Staged:
    flash_sales: int = 0
    coupons: int = 0
    group_buys: int = 0
    member_prices: int = 0


def runs(at: str, lasts_minutes: int, start: datetime, end: datetime) -> Iterator[Run]:
    """The runs of a campaign held daily from `at` that overlap [start, end), the day before
    included (an evening campaign may still run after midnight)."""
    hour, minute = (int(part) for part in at.split(":"))
    day = (start.astimezone(SHANGHAI) - timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                                   microsecond=0)
    while day < end:
        starts = day.replace(hour=hour, minute=minute)
        ends = starts + timedelta(minutes=lasts_minutes)
        if ends > start and starts < end:
            yield Run(day, starts, ends)
        day += timedelta(days=1)


def _stores_at(shelves: list, place_kind: str) -> dict[int, list]:
    """`bulk.shelves_of_kind` rows grouped by store, for the stores at places of a kind."""
    place_kinds = {place.name: place.kind for place in tables.geography()[1]}
    by_store: dict[int, list] = {}
    for row in shelves:
        if place_kinds.get(row["business_circle"]) == place_kind:
            by_store.setdefault(row["store_id"], []).append(row)
    return by_store


def _offers(rng: random.Random, by_store: dict[int, list], stores: int, at: datetime
            ) -> list[Offer]:
    """`stores` of them, open at `at`, each with the SKU it holds most of."""
    open_then = [store_id for store_id, rows in by_store.items()
                 if is_open(rows[0]["opens_at"], rows[0]["closes_at"], at)]
    chosen = []
    for store_id in rng.sample(open_then, min(stores, len(open_then))):
        sku = max(by_store[store_id], key=lambda row: (row["available"], -row["sku_id"]))
        chosen.append(Offer(store_id, sku["sku_id"], sku["price_fen"], sku["available"]))
    return chosen


def _price(list_price_fen: int, share: float) -> int | None:
    """A campaign price in whole jiao, below the list price; None when there is none."""
    price = round(list_price_fen * share / 10) * 10
    return price if 0 < price < list_price_fen else None


def _store_offers(seed: int, tag: str, campaigns, shelves: dict[str, list], start: datetime,
                  end: datetime) -> Iterator[tuple[object, Run, Offer, random.Random]]:
    """(campaign, run, offer, the run's random stream) for every store that takes part in a
    run of a store campaign (flash sales, group buys) overlapping [start, end)."""
    for campaign in campaigns:
        by_store = _stores_at(shelves[campaign.store_kind], campaign.place_kind)
        for run in runs(campaign.at, campaign.lasts_minutes, start, end):
            rng = random.Random(f"{seed}:{tag}:{campaign.title}:{run.day.date()}")
            for offer in _offers(rng, by_store, campaign.stores, run.starts):
                yield campaign, run, offer, rng


async def _flash_sales(conn: Connection, stamp, seed: int, shelves: dict[str, list],
                       start: datetime, end: datetime) -> int:
    made = 0
    for campaign, run, offer, rng in _store_offers(seed, "flash", tables.flash_sale_campaigns(),
                                                   shelves, start, end):
        quantity = min(rng.randint(*campaign.quantity), offer.available)
        price = _price(offer.list_price_fen, rng.uniform(*campaign.price_share))
        if quantity < 1 or price is None:
            continue
        await flash_sales.insert(
            conn, store_id=offer.store_id, sku_id=offer.sku_id, title=campaign.title,
            price_fen=price, quantity=quantity, per_user_limit=campaign.per_user_limit,
            starts_at=stamp(run.starts), ends_at=stamp(run.ends),
            pay_within_seconds=campaign.pay_within_seconds, created_by=None,
            now=stamp(FOUNDED))
        made += 1
    return made


async def _group_buys(conn: Connection, stamp, seed: int, shelves: dict[str, list],
                      start: datetime, end: datetime) -> int:
    made = 0
    for campaign, run, offer, _ in _store_offers(seed, "group", tables.group_buy_campaigns(),
                                                 shelves, start, end):
        price = _price(offer.list_price_fen, campaign.price_share)
        if price is None:
            continue
        await group_buys.insert_campaign(
            conn, store_id=offer.store_id, sku_id=offer.sku_id, title=campaign.title,
            group_price_fen=price, group_size=campaign.group_size,
            time_limit_seconds=campaign.time_limit_minutes * 60,
            starts_at=stamp(run.starts), ends_at=stamp(run.ends), created_by=None,
            now=stamp(FOUNDED))
        made += 1
    return made


async def _coupons(conn: Connection, stamp, start: datetime, end: datetime) -> int:
    """One template per campus (or district) with stores, per run."""
    places = await bulk.store_places(conn)
    circles = sorted({row["business_circle"] for row in places if row["business_circle"]})
    campuses = {place.name for place in tables.geography()[1] if place.kind == "campus"}
    districts = sorted({row["district_code"] for row in places})
    made = 0
    for campaign in tables.coupon_campaigns():
        where = ([("campus", name) for name in circles if name in campuses]
                 if campaign.scope == "campus" else [("district", code) for code in districts])
        for run in runs(campaign.at, campaign.lasts_minutes, start, end):
            for scope, name in where:
                await coupons.insert_template(
                    conn, title=campaign.title, kind=campaign.kind,
                    threshold_fen=campaign.threshold_fen, discount_fen=campaign.discount_fen,
                    percent_off=campaign.percent_off, cap_fen=campaign.cap_fen, scope=scope,
                    store_id=None, district_code=name if scope == "district" else None,
                    campus=name if scope == "campus" else None, starts_at=stamp(run.starts),
                    ends_at=stamp(run.ends), total_qty=campaign.total_qty,
                    per_user_limit=campaign.per_user_limit, created_by=None,
                    now=stamp(FOUNDED))
                made += 1
    return made


async def _member_prices(conn: Connection, stamp, seed: int) -> int:
    terms = tables.member_prices()
    rng = random.Random(f"{seed}:member_prices")
    by_store: dict[int, list] = {}
    for row in await bulk.shelves_of_kind(conn, None):
        by_store.setdefault(row["store_id"], []).append(row)
    levels = list(terms.min_level)
    made = 0
    for store_id, rows in by_store.items():
        if rng.random() >= terms.store_share:
            continue
        for sku in rng.sample(rows, min(rng.randint(*terms.skus), len(rows))):
            price = _price(sku["price_fen"], rng.uniform(*terms.price_share))
            if price is None:
                continue
            level = rng.choices(levels, weights=list(terms.min_level.values()))[0]
            await membership.set_member_price(conn, store_id, sku["sku_id"], price, level,
                                              stamp(FOUNDED))
            made += 1
    return made


async def stage(db_path: Path | str, seed: int, start: datetime, end: datetime) -> Staged:
    """Write the window's campaigns into the city's database at `db_path` (once: a database
    that holds flash sales, coupons or group buys already is left as it is); returns how
    many of each were written."""
    db = database_for(db_path, Clock(FOUNDED, speed=1.0), read_connections=1)
    await db.open()
    try:
        async def write(conn: Connection) -> Staged:
            if await bulk.has_campaigns(conn):
                return Staged()
            kinds = ({c.store_kind for c in tables.flash_sale_campaigns()}
                     | {c.store_kind for c in tables.group_buy_campaigns()})
            shelves = {kind: await bulk.shelves_of_kind(conn, kind) for kind in kinds}
            stamp = db.clock.stamp
            return Staged(await _flash_sales(conn, stamp, seed, shelves, start, end),
                          await _coupons(conn, stamp, start, end),
                          await _group_buys(conn, stamp, seed, shelves, start, end),
                          await _member_prices(conn, stamp, seed))

        return await db.transaction(write, long=True)
    finally:
        await db.close()
