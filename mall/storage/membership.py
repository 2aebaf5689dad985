"""Members, their points ledger, and member prices.

A balance changes only through `move`, which writes the ledger row and the member's new
balance in one statement pair inside the caller's transaction, so the two cannot part."""

from __future__ import annotations

from sqlite3 import Row

from .database import Connection

_LEDGER = ("SELECT id, order_id, reason, points, spent_fen, balance, at FROM points_ledger")


async def member(conn: Connection, user_id: int) -> Row | None:
    rows = await conn.execute_fetchall(
        "SELECT user_id, level, points, spent_fen, joined_at, updated_at FROM members"
        " WHERE user_id = ?", (user_id,))
    return rows[0] if rows else None


async def standing(conn: Connection, user_id: int, order_id: int) -> Row:
    """What a move for this order needs to know first, in one read: the member's spending
    (None before their first move) and whether the order has earned its points already."""
    rows = await conn.execute_fetchall(
        "SELECT (SELECT spent_fen FROM members WHERE user_id = ?) AS spent_fen,"
        " EXISTS (SELECT 1 FROM points_ledger WHERE order_id = ? AND reason = 'earned')"
        " AS earned", (user_id, order_id))
    return rows[0]


async def move(conn: Connection, user_id: int, *, joined: bool, order_id: int | None,
               reason: str, points: int, spent_fen: int, level: str, now: str,
               at_least: int | None = None) -> int | None:
    """Change a member's points and spending by one ledger row, and set their level; the
    balance after it, or None, writing nothing, when `at_least` is given and the balance is
    below it.  `joined` says whether the member has their row yet (read under the member's
    lock, so it cannot change before this): their first move makes it."""
    if joined:
        rows = await conn.execute_fetchall(
            "UPDATE members SET points = points + ?1, spent_fen = spent_fen + ?2, level = ?3,"
            " updated_at = ?4 WHERE user_id = ?5"
            " AND (CAST(?6 AS INTEGER) IS NULL OR points >= ?6) RETURNING points",
            (points, spent_fen, level, now, user_id, at_least))
        if not rows:
            return None
        balance = rows[0][0]
    else:
        if at_least is not None and at_least > 0:   # no points before the first move
            return None
        await conn.execute(
            "INSERT INTO members (user_id, level, points, spent_fen, joined_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)", (user_id, level, points, spent_fen, now, now))
        balance = points
    await conn.execute(
        "INSERT INTO points_ledger (user_id, order_id, reason, points, spent_fen, balance, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (user_id, order_id, reason, points, spent_fen, balance, now))
    return balance


async def since_membership(conn: Connection) -> str:
    """When this database gained membership (migration 0012, on the mall clock): orders paid
    before it earned nothing and never will."""
    rows = await conn.execute_fetchall(
        "SELECT applied_at FROM schema_migrations WHERE version = 12")
    return rows[0][0]


async def unearned(conn: Connection, since: str, before: str, limit: int) -> list[Row]:
    """Orders paid in [since, before), not refunded, that earned no points.

    The earn is looked up per order, by the ledger's (order, reason) index, in a subquery
    the planner cannot turn into a join: as NOT EXISTS, PostgreSQL planned it with
    statistics from before the evening (no earned row yet, when autovacuum is off) as a scan
    of every earned row for each order paid, 40 ms a sweep by the crest instead of 0.3."""
    return list(await conn.execute_fetchall(
        "SELECT id, user_id, total_fen FROM (SELECT o.id, o.user_id, o.total_fen, o.paid_at,"
        " (SELECT 1 FROM points_ledger e WHERE e.order_id = o.id AND e.reason = 'earned')"
        " AS earned FROM orders o WHERE o.paid_at >= ? AND o.paid_at < ?"
        " AND o.status != 'refunded') AS paid WHERE earned IS NULL ORDER BY paid_at LIMIT ?",
        (since, before, limit)))


async def on_order(conn: Connection, order_id: int) -> dict[str, Row]:
    """The order's ledger rows by reason."""
    rows = await conn.execute_fetchall(f"{_LEDGER} WHERE order_id = ?", (order_id,))
    return {row["reason"]: row for row in rows}


async def ledger(conn: Connection, user_id: int, before_id: int, limit: int) -> list[Row]:
    return list(await conn.execute_fetchall(
        f"{_LEDGER} WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
        (user_id, before_id, limit)))


async def set_member_price(conn: Connection, store_id: int, sku_id: int, price_fen: int,
                           min_level: str, now: str) -> None:
    await conn.execute(
        "INSERT INTO member_prices (sku_id, store_id, price_fen, min_level, updated_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (sku_id) DO UPDATE SET price_fen ="
        " excluded.price_fen, min_level = excluded.min_level, updated_at = excluded.updated_at",
        (sku_id, store_id, price_fen, min_level, now))


async def drop_member_price(conn: Connection, store_id: int, sku_id: int) -> bool:
    rows = await conn.execute_fetchall(
        "DELETE FROM member_prices WHERE store_id = ? AND sku_id = ? RETURNING 1",
        (store_id, sku_id))
    return bool(rows)


async def member_prices(conn: Connection, store_id: int) -> list[Row]:
    return list(await conn.execute_fetchall(
        "SELECT m.sku_id, p.id AS product_id, p.name, k.spec, k.price_fen,"
        " m.price_fen AS member_price_fen, m.min_level, m.updated_at FROM member_prices m"
        " JOIN skus k ON k.id = m.sku_id JOIN products p ON p.id = k.product_id"
        " WHERE m.store_id = ? ORDER BY m.sku_id", (store_id,)))
