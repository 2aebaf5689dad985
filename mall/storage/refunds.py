"""Refunds (售后退款) and the log of refund notifications received."""

from __future__ import annotations

from sqlite3 import Row

from .database import Connection

_REFUND = ("SELECT id, order_id, payment_id, out_refund_no, amount_fen, reason, cause,"
           " from_status, status, requested_at, decided_at, decided_by, reject_reason, sent_at,"
           " refund_id, settled_at FROM refunds")


async def insert(conn: Connection, *, order_id: int, payment_id: int, out_refund_no: str,
                 amount_fen: int, reason: str, cause: str, from_status: str, status: str,
                 now: str) -> int:
    """`status` is `requested` (a customer's, for the store to decide) or `approved` (one the
    mall makes itself, e.g. for a group buy that failed)."""
    rows = await conn.execute_fetchall(
        "INSERT INTO refunds (order_id, payment_id, out_refund_no, amount_fen, reason, cause,"
        " from_status, status, requested_at, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (order_id, payment_id, out_refund_no, amount_fen, reason, cause, from_status, status,
         now, now if status == "approved" else None))
    return rows[0][0]


async def for_order(conn: Connection, order_id: int) -> Row | None:
    rows = await conn.execute_fetchall(f"{_REFUND} WHERE order_id = ?", (order_id,))
    return rows[0] if rows else None


async def by_out_refund_no(conn: Connection, out_refund_no: str) -> Row | None:
    rows = await conn.execute_fetchall(f"{_REFUND} WHERE out_refund_no = ?", (out_refund_no,))
    return rows[0] if rows else None


async def decide(conn: Connection, refund_id: int, to_status: str, by: int, now: str,
                 reject_reason: str | None = None) -> bool:
    """A requested refund approved or rejected; False when it was decided already."""
    rows = await conn.execute_fetchall(
        "UPDATE refunds SET status = ?, decided_by = ?, decided_at = ?, reject_reason = ?"
        " WHERE id = ? AND status = 'requested' RETURNING 1",
        (to_status, by, now, reject_reason, refund_id))
    return bool(rows)


async def mark_sent(conn: Connection, refund_id: int, payer_refund_id: str, now: str) -> bool:
    """The payer accepted an approved refund; False when it was sent or settled already."""
    rows = await conn.execute_fetchall(
        "UPDATE refunds SET status = 'processing', refund_id = ?, sent_at = ?"
        " WHERE id = ? AND status = 'approved' RETURNING 1", (payer_refund_id, now, refund_id))
    return bool(rows)


async def settle(conn: Connection, refund_id: int, payer_refund_id: str | None,
                 now: str) -> bool:
    """The money went back: approved or processing -> succeeded, once."""
    rows = await conn.execute_fetchall(
        "UPDATE refunds SET status = 'succeeded', refund_id = coalesce(?, refund_id),"
        " settled_at = ? WHERE id = ? AND status IN ('approved', 'processing') RETURNING 1",
        (payer_refund_id, now, refund_id))
    return bool(rows)


async def to_send(conn: Connection, limit: int) -> list[Row]:
    """Approved refunds the payer has not accepted yet (it was unreachable)."""
    return list(await conn.execute_fetchall(
        f"{_REFUND} WHERE status = 'approved' ORDER BY id LIMIT ?", (limit,)))


async def to_query(conn: Connection, asked_before: str, limit: int) -> list[Row]:
    """Refunds sent but not heard of since `asked_before`: the ones to ask the payer about."""
    return list(await conn.execute_fetchall(
        f"{_REFUND} WHERE status = 'processing' AND coalesce(queried_at, sent_at) <= ?"
        " ORDER BY id LIMIT ?", (asked_before, limit)))


async def mark_queried(conn: Connection, refund_id: int, now: str) -> None:
    await conn.execute("UPDATE refunds SET queried_at = ? WHERE id = ?", (now, refund_id))


async def record_notification(conn: Connection, notification_id: str, out_refund_no: str,
                              refund_status: str, now: str) -> bool:
    """Log a notification; False if this id was seen before (a repeat)."""
    rows = await conn.execute_fetchall(
        "INSERT INTO refund_notifications (id, out_refund_no, refund_status, outcome,"
        " received_at) VALUES (?, ?, ?, 'received', ?) ON CONFLICT (id) DO NOTHING RETURNING 1",
        (notification_id, out_refund_no, refund_status, now))
    return bool(rows)


async def set_notification_outcome(conn: Connection, notification_id: str, outcome: str) -> None:
    await conn.execute("UPDATE refund_notifications SET outcome = ? WHERE id = ?",
                       (outcome, notification_id))


async def for_store(conn: Connection, store_id: int, status: str | None, limit: int
                    ) -> list[Row]:
    """A store's refunds, newest first (optionally of one status)."""
    where, args = "o.store_id = ?", [store_id]
    if status is not None:
        where += " AND r.status = ?"
        args.append(status)
    return list(await conn.execute_fetchall(
        "SELECT r.id, r.order_id, r.amount_fen, r.reason, r.cause, r.from_status, r.status,"
        " r.requested_at, r.decided_at, r.reject_reason, r.settled_at FROM refunds r"
        f" JOIN orders o ON o.id = r.order_id WHERE {where} ORDER BY r.id DESC LIMIT ?",
        (*args, limit)))
