"""Group-buy campaigns (拼团), their groups and the members' orders."""

from __future__ import annotations

from sqlite3 import Row

from .database import Connection

_CAMPAIGN = (
    "SELECT g.id, g.store_id, g.sku_id, g.title, g.group_price_fen, g.group_size,"
    " g.time_limit_seconds, g.starts_at, g.ends_at, s.name AS store_name,"
    " p.name AS product_name, k.price_fen AS list_price_fen FROM group_buys g"
    " JOIN stores s ON s.id = g.store_id JOIN skus k ON k.id = g.sku_id"
    " JOIN products p ON p.id = k.product_id"
)
# Members count while their order stands (not closed unpaid); paid ones once paid.
_GROUP = (
    "SELECT b.id, b.group_buy_id, b.leader_id, b.share_code, b.status, b.opened_at,"
    " b.deadline_at, b.closed_at, g.group_size,"
    " (SELECT count(*) FROM group_members m JOIN orders o ON o.id = m.order_id"
    "  WHERE m.group_id = b.id AND o.status NOT IN ('cancelled', 'expired')) AS members,"
    " (SELECT count(*) FROM group_members m JOIN orders o ON o.id = m.order_id"
    "  WHERE m.group_id = b.id AND o.paid_at IS NOT NULL) AS paid"
    " FROM buy_groups b JOIN group_buys g ON g.id = b.group_buy_id"
)


async def insert_campaign(conn: Connection, *, store_id: int, sku_id: int, title: str,
                          group_price_fen: int, group_size: int, time_limit_seconds: int,
                          starts_at: str, ends_at: str, created_by: int | None,
                          now: str) -> int:
    rows = await conn.execute_fetchall(
        "INSERT INTO group_buys (store_id, sku_id, title, group_price_fen, group_size,"
        " time_limit_seconds, starts_at, ends_at, created_by, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (store_id, sku_id, title, group_price_fen, group_size, time_limit_seconds, starts_at,
         ends_at, created_by, now))
    return rows[0][0]


async def campaign(conn: Connection, campaign_id: int) -> Row | None:
    rows = await conn.execute_fetchall(f"{_CAMPAIGN} WHERE g.id = ?", (campaign_id,))
    return rows[0] if rows else None


async def campaigns_on(conn: Connection, now: str, store_id: int | None, limit: int
                       ) -> list[Row]:
    where, args = "g.starts_at <= ?1 AND g.ends_at > ?1", [now]
    if store_id is not None:
        where += " AND g.store_id = ?2"
        args.append(store_id)
    return list(await conn.execute_fetchall(
        f"{_CAMPAIGN} WHERE {where} ORDER BY g.ends_at, g.id LIMIT {int(limit)}", args))


async def insert_group(conn: Connection, campaign_id: int, leader_id: int, share_code: str,
                       opened_at: str, deadline_at: str) -> int:
    rows = await conn.execute_fetchall(
        "INSERT INTO buy_groups (group_buy_id, leader_id, share_code, status, opened_at,"
        " deadline_at) VALUES (?, ?, ?, 'open', ?, ?)"
        " RETURNING id",
        (campaign_id, leader_id, share_code, opened_at, deadline_at))
    return rows[0][0]


async def group(conn: Connection, group_id: int) -> Row | None:
    rows = await conn.execute_fetchall(f"{_GROUP} WHERE b.id = ?", (group_id,))
    return rows[0] if rows else None


async def group_by_code(conn: Connection, share_code: str) -> Row | None:
    rows = await conn.execute_fetchall(f"{_GROUP} WHERE b.share_code = ?", (share_code,))
    return rows[0] if rows else None


async def group_of_order(conn: Connection, order_id: int) -> Row | None:
    rows = await conn.execute_fetchall(
        f"{_GROUP} WHERE b.id = (SELECT group_id FROM group_members WHERE order_id = ?)",
        (order_id,))
    return rows[0] if rows else None


async def is_member(conn: Connection, group_id: int, user_id: int) -> bool:
    """A member whose order still stands."""
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM group_members m JOIN orders o ON o.id = m.order_id"
        " WHERE m.group_id = ? AND m.user_id = ? AND o.status NOT IN ('cancelled', 'expired')",
        (group_id, user_id))
    return bool(rows)


async def insert_member(conn: Connection, group_id: int, order_id: int, user_id: int,
                        now: str) -> None:
    await conn.execute(
        "INSERT INTO group_members (order_id, group_id, user_id, joined_at) VALUES (?, ?, ?, ?)",
        (order_id, group_id, user_id, now))


async def complete_if_full(conn: Connection, group_id: int, now: str) -> bool:
    """After a member's payment: the group succeeds if it is open and enough members have
    paid; True then.  The count runs under the group's lock: two members paying at once
    each count the other's payment, once it is committed, instead of neither."""
    await conn.lock("group", group_id)
    rows = await conn.execute_fetchall(
        "UPDATE buy_groups SET status = 'succeeded', closed_at = ?1 WHERE status = 'open'"
        " AND id = ?2 AND (SELECT count(*) FROM group_members m JOIN orders o"
        "  ON o.id = m.order_id WHERE m.group_id = buy_groups.id AND o.paid_at IS NOT NULL)"
        "  >= (SELECT group_size FROM group_buys WHERE id = buy_groups.group_buy_id)"
        " RETURNING id", (now, group_id))
    return bool(rows)


async def due_to_fail(conn: Connection, now: str, limit: int) -> list[int]:
    rows = await conn.execute_fetchall(
        "SELECT id FROM buy_groups WHERE status = 'open' AND deadline_at <= ?"
        " ORDER BY deadline_at LIMIT ?", (now, limit))
    return [row[0] for row in rows]


async def fail(conn: Connection, group_id: int, now: str) -> bool:
    rows = await conn.execute_fetchall(
        "UPDATE buy_groups SET status = 'failed', closed_at = ? WHERE id = ? AND status = 'open'"
        " RETURNING 1", (now, group_id))
    return bool(rows)


async def member_orders(conn: Connection, group_id: int) -> list[Row]:
    return list(await conn.execute_fetchall(
        "SELECT o.id, o.status, o.total_fen, o.closed_at FROM group_members m"
        " JOIN orders o ON o.id = m.order_id WHERE m.group_id = ? ORDER BY o.id", (group_id,)))
