"""Orders, their lines, and the idempotency keys that map a client's retry to its order."""

from __future__ import annotations

from collections.abc import Iterable
from sqlite3 import Row

from .database import Connection
from .inventory import LIVE

_ORDER = (
    "SELECT o.id, o.user_id, o.store_id, o.status, o.fulfilment, o.pickup_point_id,"
    " o.address_id, o.total_fen, o.pickup_code, o.pickup_failures, o.created_at,"
    " o.expires_at, o.paid_at, o.ready_at, o.closed_at, o.points_used, o.points_fen"
    " FROM orders o"
)


async def insert(conn: Connection, *, user_id: int, store_id: int, fulfilment: str,
                 pickup_point_id: int | None, address_id: int | None, total_fen: int,
                 now: str, expires_at: str, points_used: int = 0, points_fen: int = 0) -> int:
    rows = await conn.execute_fetchall(
        "INSERT INTO orders (user_id, store_id, status, fulfilment, pickup_point_id, address_id,"
        " total_fen, created_at, expires_at, points_used, points_fen)"
        " VALUES (?, ?, 'pending_payment', ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (user_id, store_id, fulfilment, pickup_point_id, address_id, total_fen, now, expires_at,
         points_used, points_fen))
    return rows[0][0]


async def insert_lines(conn: Connection, order_id: int,
                       lines: Iterable[tuple[int, str, int, int]]) -> None:
    """Lines as (sku_id, product_name, unit_price_fen, qty)."""
    await conn.executemany(
        "INSERT INTO order_lines (order_id, line_no, sku_id, product_name, unit_price_fen, qty)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(order_id, no, *line) for no, line in enumerate(lines, start=1)])


async def order(conn: Connection, order_id: int) -> Row | None:
    rows = await conn.execute_fetchall(f"{_ORDER} WHERE o.id = ?", (order_id,))
    return rows[0] if rows else None


async def lines(conn: Connection, order_id: int) -> list[Row]:
    return list(await conn.execute_fetchall(
        "SELECT line_no, sku_id, product_name, unit_price_fen, qty FROM order_lines"
        " WHERE order_id = ? ORDER BY line_no", (order_id,)))


async def move(conn: Connection, order_id: int, from_states: tuple[str, ...], to_state: str,
               **stamps: object) -> bool:
    """Change state only from one of `from_states`; False if another change came first."""
    sets = ", ".join(["status = ?", *(f"{column} = ?" for column in stamps)])
    marks = ",".join("?" * len(from_states))
    rows = await conn.execute_fetchall(
        f"UPDATE orders SET {sets} WHERE id = ? AND status IN ({marks}) RETURNING 1",
        (to_state, *stamps.values(), order_id, *from_states))
    return bool(rows)


async def count_pickup_failure(conn: Connection, order_id: int) -> int:
    rows = await conn.execute_fetchall(
        "UPDATE orders SET pickup_failures = pickup_failures + 1 WHERE id = ?"
        " RETURNING pickup_failures", (order_id,))
    return rows[0][0]


async def due_for_expiry(conn: Connection, now: str, limit: int) -> list[int]:
    rows = await conn.execute_fetchall(
        "SELECT id FROM orders WHERE status = 'pending_payment' AND expires_at <= ?"
        " ORDER BY expires_at LIMIT ?", (now, limit))
    return [row[0] for row in rows]


async def for_user(conn: Connection, user_id: int, before_id: int, limit: int) -> list[Row]:
    return list(await conn.execute_fetchall(
        f"{_ORDER} WHERE o.user_id = ? AND o.id < ? ORDER BY o.id DESC LIMIT ?",
        (user_id, before_id, limit)))


async def all_for_user(conn: Connection, user_id: int) -> list[Row]:
    return list(await conn.execute_fetchall(
        f"{_ORDER} WHERE o.user_id = ? ORDER BY o.id", (user_id,)))


async def lines_for_user(conn: Connection, user_id: int) -> list[Row]:
    """Every line of every order of one user, with its order id, in order."""
    return list(await conn.execute_fetchall(
        "SELECT l.order_id, l.line_no, l.sku_id, l.product_name, l.unit_price_fen, l.qty"
        " FROM orders o JOIN order_lines l ON l.order_id = o.id WHERE o.user_id = ?"
        " ORDER BY l.order_id, l.line_no", (user_id,)))


async def live_for_user(conn: Connection, user_id: int) -> list[Row]:
    """The user's orders still under way (ids and states)."""
    marks = ",".join("?" * len(LIVE))
    return list(await conn.execute_fetchall(
        f"SELECT id, status FROM orders WHERE user_id = ? AND status IN ({marks}) ORDER BY id",
        (user_id, *LIVE)))


async def count_for_user(conn: Connection, user_id: int) -> int:
    rows = await conn.execute_fetchall("SELECT count(*) FROM orders WHERE user_id = ?",
                                       (user_id,))
    return rows[0][0]


async def for_store(conn: Connection, store_id: int, *, since: str, until: str,
                    statuses: tuple[str, ...] | None, before_id: int, limit: int) -> list[Row]:
    sql = f"{_ORDER} WHERE o.store_id = ? AND o.created_at >= ? AND o.created_at < ? AND o.id < ?"
    params: list = [store_id, since, until, before_id]
    if statuses:
        sql += f" AND o.status IN ({','.join('?' * len(statuses))})"
        params.extend(statuses)
    sql += " ORDER BY o.id DESC LIMIT ?"
    params.append(limit)
    return list(await conn.execute_fetchall(sql, params))


async def pickup_queue(conn: Connection, store_id: int, limit: int) -> list[Row]:
    """Paid or ready pickup orders, oldest first: the counter's work list."""
    return list(await conn.execute_fetchall(
        f"{_ORDER} WHERE o.store_id = ? AND o.fulfilment = 'pickup'"
        " AND o.status IN ('paid', 'ready_for_pickup') ORDER BY o.id LIMIT ?",
        (store_id, limit)))


async def idempotent_order(conn: Connection, user_id: int, key: str) -> Row | None:
    rows = await conn.execute_fetchall(
        "SELECT request_hash, order_id FROM idempotency_keys WHERE user_id = ? AND key = ?",
        (user_id, key))
    return rows[0] if rows else None


async def claim_key(conn: Connection, user_id: int, key: str, request_hash: str,
                    order_id: int, now: str) -> bool:
    """Remember the key as this order's; False when another order holds it already."""
    rows = await conn.execute_fetchall(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, order_id, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, key) DO NOTHING RETURNING 1",
        (user_id, key, request_hash, order_id, now))
    return bool(rows)
