"""Orders, their lines, and the idempotency keys that map a client's retry to its order."""

from __future__ import annotations

from collections.abc import Iterable
from sqlite3 import Row

from .database import Connection
from .inventory import LIVE

_COLUMNS = ("id", "user_id", "store_id", "status", "fulfilment", "pickup_point_id",
            "address_id", "total_fen", "pickup_code", "pickup_failures", "created_at",
            "expires_at", "paid_at", "ready_at", "closed_at", "points_used", "points_fen")
_SELECT = f"SELECT {', '.join(f'o.{column}' for column in _COLUMNS)}"
_ORDER = f"{_SELECT} FROM orders o"
# What a change of state answers with: the order as it is now, and the group buy it belongs
# to (None for most), so the steps after it need not read either again.
_CHANGED = (f" RETURNING {', '.join(_COLUMNS)},"
            " (SELECT group_id FROM group_members WHERE order_id = orders.id) AS group_id")


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


async def for_customer(conn: Connection, order_id: int) -> Row | None:
    """The order with the coupon it used and the flash sale it bought from (None when
    none), what its customer's order page shows, in one read."""
    rows = await conn.execute_fetchall(
        f"{_SELECT}, (SELECT id FROM user_coupons WHERE order_id = o.id LIMIT 1) AS coupon_id,"
        " (SELECT discount_fen FROM user_coupons WHERE order_id = o.id LIMIT 1)"
        " AS coupon_discount_fen,"
        " (SELECT sale_id FROM flash_sale_orders WHERE order_id = o.id LIMIT 1) AS flash_sale_id"
        " FROM orders o WHERE o.id = ?", (order_id,))
    return rows[0] if rows else None


async def for_staff(conn: Connection, order_id: int) -> Row | None:
    """The order with the state of its group buy (None when it has none): staff may not hand
    over the goods of a group that has not formed."""
    rows = await conn.execute_fetchall(
        f"{_SELECT}, (SELECT b.status FROM group_members m"
        " JOIN buy_groups b ON b.id = m.group_id WHERE m.order_id = o.id) AS group_status"
        " FROM orders o WHERE o.id = ?", (order_id,))
    return rows[0] if rows else None


async def move(conn: Connection, order_id: int, from_states: tuple[str, ...], to_state: str,
               **stamps: object) -> Row | None:
    """Change state only from one of `from_states`; the order as changed (with `group_id`),
    or None if another change came first."""
    sets = ", ".join(["status = ?", *(f"{column} = ?" for column in stamps)])
    marks = ",".join("?" * len(from_states))
    rows = await conn.execute_fetchall(
        f"UPDATE orders SET {sets} WHERE id = ? AND status IN ({marks}){_CHANGED}",
        (to_state, *stamps.values(), order_id, *from_states))
    return rows[0] if rows else None


async def mark_paid(conn: Connection, order_id: int, paid_at: str,
                    pickup_code: str) -> Row | None:
    """An unpaid order paid: it takes `pickup_code` if its goods are picked up; the order as
    changed (with `group_id`), or None when it was not unpaid any more."""
    rows = await conn.execute_fetchall(
        "UPDATE orders SET status = 'paid', paid_at = ?, pickup_code = CASE fulfilment"
        f" WHEN 'pickup' THEN ? END WHERE id = ? AND status = 'pending_payment'{_CHANGED}",
        (paid_at, pickup_code, order_id))
    return rows[0] if rows else None


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
