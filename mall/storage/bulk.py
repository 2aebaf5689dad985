"""Bulk loading for a freshly migrated database (the simulated city): rows inserted many at
once (`executemany`, or COPY on PostgreSQL), with ids chosen by the caller so that the
loader's ids are the mall's ids.  Call inside one `Database.transaction()`."""

from __future__ import annotations

from collections.abc import Iterable

from .database import Connection

_COLUMNS = {
    "stores": ("id", "name", "kind", "district_code", "business_circle", "lat", "lng",
               "opens_at", "closes_at", "created_at"),
    "pickup_points": ("id", "store_id", "kind", "name", "lat", "lng", "created_at"),
    "users": ("id", "openid", "role", "nickname", "phone_masked", "phone_enc", "created_at"),
    "store_staff": ("user_id", "store_id", "created_at"),
    "products": ("id", "store_id", "name", "description", "created_at"),
    "product_tags": ("product_id", "tag"),
    "product_scenes": ("product_id", "scene"),
    "skus": ("id", "product_id", "spec", "price_fen", "created_at"),
    "inventory": ("store_id", "sku_id", "on_hand", "updated_at"),
    "members": ("user_id", "level", "points", "spent_fen", "joined_at", "updated_at"),
    "points_ledger": ("id", "user_id", "order_id", "reason", "points", "spent_fen", "balance",
                      "at"),
}

TABLES = tuple(_COLUMNS)


async def insert(conn: Connection, table: str, rows: Iterable[tuple]) -> None:
    """Insert rows (tuples in the column order of `_COLUMNS[table]`): by COPY on
    PostgreSQL."""
    await conn.insert_many(table, _COLUMNS[table], rows)


async def count(conn: Connection, table: str) -> int:
    if table not in _COLUMNS:
        raise ValueError(f"unknown table {table}")
    rows = await conn.execute_fetchall(f"SELECT count(*) FROM {table}")
    return rows[0][0]


async def is_empty(conn: Connection) -> bool:
    """True when no store, product or user exists yet (a city can be loaded)."""
    for table in ("stores", "products", "users"):
        if await count(conn, table):
            return False
    return True


async def open_ledger(conn: Connection) -> None:
    """The inventory ledger's opening rows: the stock the load put on the shelves."""
    await conn.execute(
        "INSERT INTO inventory_ledger (store_id, sku_id, on_hand_delta, reserved_delta, reason,"
        " at) SELECT store_id, sku_id, on_hand, reserved, 'opening', updated_at FROM inventory"
        " WHERE on_hand != 0 OR reserved != 0")


async def shelves_of_kind(conn: Connection, kind: str | None) -> list:
    """Every SKU of the stores of one kind (of every kind for None), with where the store is,
    its hours, its list price and what is free to sell: what a city's campaigns are drawn
    from."""
    return list(await conn.execute_fetchall(
        "SELECT s.id AS store_id, s.business_circle, s.opens_at, s.closes_at, k.id AS sku_id,"
        " k.price_fen, i.on_hand - i.reserved AS available FROM stores s"
        " JOIN inventory i ON i.store_id = s.id JOIN skus k ON k.id = i.sku_id"
        " WHERE CAST(?1 AS TEXT) IS NULL OR s.kind = ?1 ORDER BY s.id, k.id", (kind,)))


async def store_places(conn: Connection) -> list:
    """Where every store is: its business circle and district."""
    return list(await conn.execute_fetchall(
        "SELECT id, business_circle, district_code FROM stores ORDER BY id"))


async def has_campaigns(conn: Connection) -> bool:
    """True once any flash sale, coupon template, group buy or member price exists."""
    rows = await conn.execute_fetchall(
        "SELECT EXISTS (SELECT 1 FROM flash_sales) OR EXISTS (SELECT 1 FROM coupon_templates)"
        " OR EXISTS (SELECT 1 FROM group_buys) OR EXISTS (SELECT 1 FROM member_prices)")
    return bool(rows[0][0])
