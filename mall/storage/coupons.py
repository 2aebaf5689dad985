"""Coupon templates and the coupons customers claimed from them."""

from __future__ import annotations

from sqlite3 import Row

from .database import Connection

_TEMPLATE = (
    "SELECT t.id, t.title, t.kind, t.threshold_fen, t.discount_fen, t.percent_off, t.cap_fen,"
    " t.scope, t.store_id, t.district_code, d.name AS district, t.campus, t.starts_at,"
    " t.ends_at, t.total_qty, t.per_user_limit, t.claimed FROM coupon_templates t"
    " LEFT JOIN districts d ON d.code = t.district_code"
)
_COUPON = (
    "SELECT c.id, c.template_id, c.user_id, c.status, c.claimed_at, c.order_id,"
    " c.discount_fen, c.used_at FROM user_coupons c"
)


async def insert_template(conn: Connection, *, title: str, kind: str, threshold_fen: int,
                          discount_fen: int | None, percent_off: int | None,
                          cap_fen: int | None, scope: str, store_id: int | None,
                          district_code: str | None, campus: str | None, starts_at: str,
                          ends_at: str, total_qty: int, per_user_limit: int,
                          created_by: int | None, now: str) -> int:
    rows = await conn.execute_fetchall(
        "INSERT INTO coupon_templates (title, kind, threshold_fen, discount_fen, percent_off,"
        " cap_fen, scope, store_id, district_code, campus, starts_at, ends_at, total_qty,"
        " per_user_limit, created_by, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (title, kind, threshold_fen, discount_fen, percent_off, cap_fen, scope, store_id,
         district_code, campus, starts_at, ends_at, total_qty, per_user_limit, created_by, now))
    return rows[0][0]


async def template(conn: Connection, template_id: int) -> Row | None:
    rows = await conn.execute_fetchall(f"{_TEMPLATE} WHERE t.id = ?", (template_id,))
    return rows[0] if rows else None


async def claimable(conn: Connection, now: str, limit: int) -> list[Row]:
    """Templates in their window with coupons left, soonest to end first."""
    return list(await conn.execute_fetchall(
        f"{_TEMPLATE} WHERE t.starts_at <= ? AND t.ends_at > ? AND t.claimed < t.total_qty"
        " ORDER BY t.ends_at, t.id LIMIT ?", (now, now, limit)))


async def take_one(conn: Connection, template_id: int) -> bool:
    """Count one more claim, unless none are left; False then."""
    rows = await conn.execute_fetchall(
        "UPDATE coupon_templates SET claimed = claimed + 1 WHERE id = ? AND claimed < total_qty"
        " RETURNING 1", (template_id,))
    return bool(rows)


async def claims_of(conn: Connection, template_id: int, user_id: int) -> int:
    rows = await conn.execute_fetchall(
        "SELECT count(*) FROM user_coupons WHERE template_id = ? AND user_id = ?",
        (template_id, user_id))
    return rows[0][0]


async def insert_coupon(conn: Connection, template_id: int, user_id: int, now: str) -> int:
    rows = await conn.execute_fetchall(
        "INSERT INTO user_coupons (template_id, user_id, status, claimed_at)"
        " VALUES (?, ?, 'available', ?) RETURNING id", (template_id, user_id, now))
    return rows[0][0]


async def coupon(conn: Connection, coupon_id: int) -> Row | None:
    rows = await conn.execute_fetchall(f"{_COUPON} WHERE c.id = ?", (coupon_id,))
    return rows[0] if rows else None


async def for_user(conn: Connection, user_id: int) -> list[Row]:
    """A customer's coupons with what each takes off, newest first."""
    return list(await conn.execute_fetchall(
        "SELECT c.id AS coupon_id, c.status, c.claimed_at, c.order_id, c.discount_fen AS"
        " discount_taken_fen, t.id AS template_id, t.title, t.kind, t.threshold_fen,"
        " t.discount_fen, t.percent_off, t.cap_fen, t.scope, t.store_id, d.name AS district,"
        " t.campus, t.starts_at, t.ends_at FROM user_coupons c"
        " JOIN coupon_templates t ON t.id = c.template_id"
        " LEFT JOIN districts d ON d.code = t.district_code"
        " WHERE c.user_id = ? ORDER BY c.id DESC", (user_id,)))


async def use(conn: Connection, coupon_id: int, order_id: int, discount_fen: int,
              now: str) -> bool:
    """Spend an available coupon on an order; False if it was not available any more."""
    rows = await conn.execute_fetchall(
        "UPDATE user_coupons SET status = 'used', order_id = ?, discount_fen = ?, used_at = ?"
        " WHERE id = ? AND status = 'available' RETURNING 1",
        (order_id, discount_fen, now, coupon_id))
    return bool(rows)


async def give_back(conn: Connection, order_id: int) -> int:
    """The coupon an order used is available again; returns how many (0 or 1)."""
    cur = await conn.execute(
        "UPDATE user_coupons SET status = 'available', order_id = NULL, discount_fen = NULL,"
        " used_at = NULL WHERE order_id = ?", (order_id,))
    return cur.rowcount


async def on_order(conn: Connection, order_id: int) -> Row | None:
    rows = await conn.execute_fetchall(f"{_COUPON} WHERE c.order_id = ?", (order_id,))
    return rows[0] if rows else None
