"""Products, their SKUs, tags and scene keys."""

from __future__ import annotations

import sqlite3
from sqlite3 import Row

from .database import Connection

SEP = "\x1f"  # joins tags inside one column; a character no tag may contain

_PRODUCT_COLUMNS = (
    "SELECT p.id AS product_id, p.store_id, p.name, p.description, k.id AS sku_id, k.spec,"
    " k.price_fen, m.price_fen AS member_price_fen, m.min_level AS member_level,"
    " coalesce(i.on_hand - i.reserved, 0) AS available,"
    " (SELECT group_concat(tag, char(31)) FROM product_tags WHERE product_id = p.id) AS tags,"
    " (SELECT group_concat(scene, char(31)) FROM product_scenes WHERE product_id = p.id)"
    " AS scenes"
)
_PRODUCT_JOINS = (
    " JOIN skus k ON k.product_id = p.id"
    " LEFT JOIN inventory i ON i.store_id = p.store_id AND i.sku_id = k.id"
    " LEFT JOIN member_prices m ON m.sku_id = k.id"
)


def catalogue_version(conn: sqlite3.Connection, store_id: int) -> int | None:
    """The store's catalogue version (migration 0007's triggers keep it), or None when it
    cannot be read at once.  Synchronous, on the event loop's own connection: a primary-key
    read costs a few microseconds, a hop to a reader thread and back costs more."""
    try:
        row = conn.execute("SELECT version FROM catalogue_versions WHERE store_id = ?",
                           (store_id,)).fetchone()
    except sqlite3.OperationalError:  # busy beyond its short timeout: serve uncached
        return None
    return row[0] if row is not None else 0


def content_version(conn: sqlite3.Connection, store_id: int) -> int | None:
    """The version of what the store's pages show apart from stock (migration 0018), or
    None when it cannot be read at once; synchronous, as `catalogue_version`."""
    try:
        row = conn.execute(
            "SELECT coalesce((SELECT version FROM catalogue_versions WHERE store_id = ?1), 0)"
            " - coalesce((SELECT moves FROM catalogue_stock_moves WHERE store_id = ?1), 0)",
            (store_id,)).fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0]


def available_now(conn: sqlite3.Connection, store_id: int,
                  sku_ids: list[int]) -> dict[int, int] | None:
    """Units available of each SKU at the store (absent: none stocked), or None when they
    cannot be read at once; synchronous, as `catalogue_version`."""
    marks = ",".join("?" * len(sku_ids))
    try:
        rows = conn.execute(
            f"SELECT sku_id, on_hand - reserved FROM inventory WHERE store_id = ?"
            f" AND sku_id IN ({marks})", (store_id, *sku_ids)).fetchall()
    except sqlite3.OperationalError:
        return None
    return {sku_id: available for sku_id, available in rows}


async def insert_product(conn: Connection, *, store_id: int, name: str, description: str,
                         tags: list[str], scenes: list[str], spec: str, price_fen: int,
                         now: str) -> tuple[int, int]:
    """A product with its first SKU and an empty inventory row at its store."""
    rows = await conn.execute_fetchall(
        "INSERT INTO products (store_id, name, description, created_at) VALUES (?, ?, ?, ?)"
        " RETURNING id",
        (store_id, name, description, now))
    product_id = rows[0][0]
    await conn.executemany("INSERT INTO product_tags (product_id, tag) VALUES (?, ?)",
                           [(product_id, tag) for tag in tags])
    await conn.executemany("INSERT INTO product_scenes (product_id, scene) VALUES (?, ?)",
                           [(product_id, scene) for scene in scenes])
    rows = await conn.execute_fetchall(
        "INSERT INTO skus (product_id, spec, price_fen, created_at) VALUES (?, ?, ?, ?)"
        " RETURNING id",
        (product_id, spec, price_fen, now))
    sku_id = rows[0][0]
    await conn.execute(
        "INSERT INTO inventory (store_id, sku_id, on_hand, reserved, updated_at)"
        " VALUES (?, ?, 0, 0, ?)", (store_id, sku_id, now))
    return product_id, sku_id


async def products_page(conn: Connection, store_id: int, *, after_id: int, limit: int,
                        tag: str | None, scene: str | None, query: str | None) -> list[Row]:
    """Rows (one per SKU) of the next `limit` products after `after_id`, in id order."""
    where = ["p.store_id = ?", "p.id > ?"]
    params: list = [store_id, after_id]
    if tag is not None:
        # Correlated EXISTS probes the (product_id, tag) key per product of this store,
        # instead of listing every product in the city that has the tag.
        where.append("EXISTS (SELECT 1 FROM product_tags t WHERE t.product_id = p.id"
                     " AND t.tag = ?)")
        params.append(tag)
    if scene is not None:
        where.append("EXISTS (SELECT 1 FROM product_scenes s WHERE s.product_id = p.id"
                     " AND s.scene = ?)")
        params.append(scene)
    if query is not None:
        escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("p.name LIKE ? ESCAPE '\\'")
        params.append(f"%{escaped}%")
    params.append(limit)
    sql = (
        f"WITH page AS (SELECT p.id FROM products p WHERE {' AND '.join(where)}"
        " ORDER BY p.id LIMIT ?) "
        f"{_PRODUCT_COLUMNS} FROM page JOIN products p ON p.id = page.id{_PRODUCT_JOINS}"
        " ORDER BY p.id, k.id"
    )
    return list(await conn.execute_fetchall(sql, params))


async def product(conn: Connection, store_id: int, product_id: int) -> list[Row]:
    return list(await conn.execute_fetchall(
        f"{_PRODUCT_COLUMNS} FROM products p{_PRODUCT_JOINS}"
        " WHERE p.store_id = ? AND p.id = ? ORDER BY k.id", (store_id, product_id)))


async def skus_at_store(conn: Connection, store_id: int, sku_ids: list[int]) -> dict[int, Row]:
    """Name, price and member price of each SKU sold by this store, keyed by SKU id."""
    marks = ",".join("?" * len(sku_ids))
    rows = await conn.execute_fetchall(
        "SELECT k.id AS sku_id, p.name, k.price_fen, m.price_fen AS member_price_fen,"
        " m.min_level AS member_level FROM skus k JOIN products p ON p.id = k.product_id"
        " LEFT JOIN member_prices m ON m.sku_id = k.id"
        f" WHERE p.store_id = ? AND k.id IN ({marks})", (store_id, *sku_ids))
    return {row["sku_id"]: row for row in rows}
