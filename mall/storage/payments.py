"""Payments (one per prepay request) and the log of payment notifications received."""

from __future__ import annotations

from sqlite3 import Row

from .database import Connection

_COLUMNS = ("id, order_id, prepay_id, out_trade_no, amount_fen, status, transaction_id,"
            " created_at, settled_at")
_PAYMENT = f"SELECT {_COLUMNS} FROM payments"


async def insert(conn: Connection, order_id: int, prepay_id: str, out_trade_no: str,
                 amount_fen: int, now: str) -> None:
    await conn.execute(
        "INSERT INTO payments (order_id, prepay_id, out_trade_no, amount_fen, status, created_at)"
        " VALUES (?, ?, ?, ?, 'created', ?)",
        (order_id, prepay_id, out_trade_no, amount_fen, now))


async def for_user(conn: Connection, user_id: int) -> list[Row]:
    return list(await conn.execute_fetchall(
        "SELECT p.order_id, p.amount_fen, p.status, p.transaction_id, p.created_at,"
        " p.settled_at FROM orders o JOIN payments p ON p.order_id = o.id WHERE o.user_id = ?"
        " ORDER BY p.id", (user_id,)))


async def for_prepay(conn: Connection, order_id: int) -> Row | None:
    """What a prepay request reads, in one read: the order, its customer's openid, and the
    prepay_id of its open payment (None when it has none)."""
    rows = await conn.execute_fetchall(
        "SELECT o.id, o.user_id, o.status, o.total_fen, o.expires_at, u.openid,"
        " (SELECT prepay_id FROM payments WHERE order_id = o.id AND status = 'created'"
        "  ORDER BY id DESC LIMIT 1) AS open_prepay_id"
        " FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = ?", (order_id,))
    return rows[0] if rows else None


async def by_id(conn: Connection, payment_id: int) -> Row | None:
    rows = await conn.execute_fetchall(f"{_PAYMENT} WHERE id = ?", (payment_id,))
    return rows[0] if rows else None


async def succeeded_for_order(conn: Connection, order_id: int) -> Row | None:
    rows = await conn.execute_fetchall(
        f"{_PAYMENT} WHERE order_id = ? AND status = 'succeeded'", (order_id,))
    return rows[0] if rows else None


async def by_prepay(conn: Connection, prepay_id: str) -> Row | None:
    rows = await conn.execute_fetchall(f"{_PAYMENT} WHERE prepay_id = ?", (prepay_id,))
    return rows[0] if rows else None


async def by_out_trade_no(conn: Connection, out_trade_no: str) -> Row | None:
    rows = await conn.execute_fetchall(f"{_PAYMENT} WHERE out_trade_no = ?", (out_trade_no,))
    return rows[0] if rows else None


async def close_open(conn: Connection, order_id: int, now: str) -> None:
    """An order that can no longer be paid closes its open prepay requests."""
    await conn.execute(
        "UPDATE payments SET status = 'closed', settled_at = ? WHERE order_id = ?"
        " AND status = 'created'", (now, order_id))


async def settle(conn: Connection, prepay_id: str, status: str, transaction_id: str | None,
                 now: str) -> bool:
    """Settle a payment still open; False when a notification settled it already."""
    rows = await conn.execute_fetchall(
        "UPDATE payments SET status = ?, transaction_id = ?, settled_at = ?"
        " WHERE prepay_id = ? AND status = 'created' RETURNING 1",
        (status, transaction_id, now, prepay_id))
    return bool(rows)


async def record_notification(conn: Connection, notification_id: str, prepay_id: str,
                              trade_state: str, now: str) -> bool:
    """Log a notification; False if this id was seen before (a repeat)."""
    rows = await conn.execute_fetchall(
        "INSERT INTO payment_notifications (id, prepay_id, trade_state, outcome, received_at)"
        " VALUES (?, ?, ?, 'received', ?) ON CONFLICT (id) DO NOTHING RETURNING 1",
        (notification_id, prepay_id, trade_state, now))
    return bool(rows)


async def set_notification_outcome(conn: Connection, notification_id: str, outcome: str) -> None:
    await conn.execute("UPDATE payment_notifications SET outcome = ? WHERE id = ?",
                       (outcome, notification_id))


async def unsettled(conn: Connection, asked_before: str, limit: int) -> list[Row]:
    """Open payments the payer has said nothing of since `asked_before` (created or last
    queried then): the ones to query."""
    return list(await conn.execute_fetchall(
        f"{_PAYMENT} WHERE status = 'created' AND created_at <= ?1"
        " AND coalesce(queried_at, created_at) <= ?1 ORDER BY created_at LIMIT ?2",
        (asked_before, limit)))


async def mark_queried(conn: Connection, prepay_id: str, now: str) -> None:
    await conn.execute("UPDATE payments SET queried_at = ? WHERE prepay_id = ?", (now, prepay_id))


async def to_close_at_payer(conn: Connection, limit: int) -> list[Row]:
    """Payments closed here (their order expired or was cancelled) but not yet at the payer."""
    return list(await conn.execute_fetchall(
        f"{_PAYMENT} WHERE status = 'closed' AND payer_closed_at IS NULL ORDER BY id LIMIT ?",
        (limit,)))


async def mark_closed_at_payer(conn: Connection, prepay_id: str, now: str) -> None:
    await conn.execute("UPDATE payments SET payer_closed_at = ? WHERE prepay_id = ?",
                       (now, prepay_id))
