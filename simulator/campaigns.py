"""The campaigns the city's merchants run in a window of simulated time, staged into a copy
of the city's database through the mall's storage layer before the load starts.

They are drawn from the city's seed, the day and the city's own shelves, so the same scenario
stages the same sales every run.  Rows name no creator (`created_by` NULL: the city's own
campaigns, as for its stores and products), so `xingcheng verify` looks for no audit rows."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from mall.clock import SHANGHAI, Clock
from mall.opening_hours import is_open
from mall.storage import Database, bulk, flash_sales

from . import tables
from .loader import FOUNDED


@dataclass(frozen=True)
class FlashSale:
    store_id: int
    sku_id: int
    title: str
    list_price_fen: int
    price_fen: int
    quantity: int
    per_user_limit: int
    starts_at: datetime
    ends_at: datetime
    pay_within_seconds: int


def _days(start: datetime, end: datetime) -> list[datetime]:
    """Midnights of every local day a window touches, and the day before (a sale that
    started yesterday evening may still run)."""
    day = (start.astimezone(SHANGHAI) - timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                                   microsecond=0)
    days = []
    while day < end:
        days.append(day)
        day += timedelta(days=1)
    return days


def flash_sales_in(seed: int, shelves: dict[str, list], start: datetime, end: datetime
                   ) -> list[FlashSale]:
    """Every flash sale running at some point of [start, end), drawn from the city's seed;
    `shelves` are `bulk.shelves_of_kind` rows per store kind.  A sale never offers more than
    stands free on the shelf."""
    place_kinds = {place.name: place.kind for place in tables.geography()[1]}
    sales = []
    for campaign in tables.flash_sale_campaigns():
        hour, minute = (int(part) for part in campaign.at.split(":"))
        by_store: dict[int, list] = {}
        for row in shelves[campaign.store_kind]:
            if place_kinds.get(row["business_circle"]) == campaign.place_kind:
                by_store.setdefault(row["store_id"], []).append(row)
        for day in _days(start, end):
            starts = day.replace(hour=hour, minute=minute)
            ends = starts + timedelta(minutes=campaign.lasts_minutes)
            if ends <= start or starts >= end:
                continue
            rng = random.Random(f"{seed}:flash:{campaign.title}:{day.date()}")
            open_then = [store_id for store_id, rows in by_store.items()
                         if is_open(rows[0]["opens_at"], rows[0]["closes_at"], starts)]
            for store_id in rng.sample(open_then, min(campaign.stores, len(open_then))):
                sale = _sale(campaign, by_store[store_id], starts, ends, rng)
                if sale is not None:
                    sales.append(sale)
    return sales


def _sale(campaign: tables.FlashSaleCampaign, skus: list, starts: datetime, ends: datetime,
          rng: random.Random) -> FlashSale | None:
    """The store's SKU it holds most of, at a share of its list price."""
    sku = max(skus, key=lambda row: (row["available"], -row["sku_id"]))
    quantity = min(rng.randint(*campaign.quantity), sku["available"])
    price = round(sku["price_fen"] * rng.uniform(*campaign.price_share) / 10) * 10
    if quantity < 1 or not 0 < price < sku["price_fen"]:
        return None
    return FlashSale(sku["store_id"], sku["sku_id"], campaign.title, sku["price_fen"], price,
                     quantity, campaign.per_user_limit, starts, ends,
                     campaign.pay_within_seconds)


async def stage(db_path: Path, seed: int, start: datetime, end: datetime) -> list[FlashSale]:
    """Write the window's flash sales into the city's database at `db_path` (once: a database
    that holds flash sales already is left as it is); returns those written."""
    db = Database(db_path, Clock(FOUNDED, speed=1.0), read_connections=1)
    await db.open()
    try:
        async def write(conn) -> list[FlashSale]:
            if await flash_sales.count(conn):
                return []
            kinds = {campaign.store_kind for campaign in tables.flash_sale_campaigns()}
            shelves = {kind: await bulk.shelves_of_kind(conn, kind) for kind in kinds}
            sales = flash_sales_in(seed, shelves, start, end)
            for sale in sales:
                await flash_sales.insert(
                    conn, store_id=sale.store_id, sku_id=sale.sku_id, title=sale.title,
                    price_fen=sale.price_fen, quantity=sale.quantity,
                    per_user_limit=sale.per_user_limit,
                    starts_at=db.clock.stamp(sale.starts_at),
                    ends_at=db.clock.stamp(sale.ends_at),
                    pay_within_seconds=sale.pay_within_seconds, created_by=None,
                    now=db.clock.stamp(FOUNDED))
            return sales

        return await db.transaction(write)
    finally:
        await db.close()
