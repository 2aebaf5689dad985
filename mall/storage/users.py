"""Users, their staff bindings to stores, and their delivery addresses."""

from __future__ import annotations

from sqlite3 import Row

from .database import Connection


async def by_openid(conn: Connection, openid: str) -> Row | None:
    """The user with the stores they are staff of (`store_ids`, comma-separated or None):
    all a login needs, in one read."""
    rows = await conn.execute_fetchall(
        "SELECT id, openid, role, last_active_at, (SELECT group_concat(store_id) FROM"
        " (SELECT store_id FROM store_staff WHERE user_id = users.id ORDER BY store_id) AS staff)"
        " AS store_ids FROM users WHERE openid = ?", (openid,))
    return rows[0] if rows else None


async def arrive(conn: Connection, openid: str, now: str) -> Row:
    """A login: the customer registered on first sight, and active as of `now`."""
    rows = await conn.execute_fetchall(
        "INSERT INTO users (openid, role, created_at, last_active_at) VALUES (?1, 'customer',"
        " ?2, ?2) ON CONFLICT (openid) DO UPDATE SET last_active_at = excluded.last_active_at"
        " RETURNING id, openid, role, last_active_at", (openid, now))
    return rows[0]


async def profile(conn: Connection, user_id: int) -> Row | None:
    rows = await conn.execute_fetchall(
        "SELECT id, openid, role, nickname, phone_masked, phone_enc, created_at,"
        " last_active_at, deleted_at FROM users WHERE id = ?", (user_id,))
    return rows[0] if rows else None


async def deleted_ids(conn: Connection) -> list[int]:
    rows = await conn.execute_fetchall("SELECT id FROM users WHERE deleted_at IS NOT NULL")
    return [row[0] for row in rows]


async def ensure(conn: Connection, openid: str, role: str, now: str) -> Row:
    """The user with this openid, registered on first sight."""
    await conn.execute(
        "INSERT INTO users (openid, role, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT (openid) DO NOTHING", (openid, role, now))
    row = await by_openid(conn, openid)
    assert row is not None
    return row


async def staff_store_ids(conn: Connection, user_id: int) -> list[int]:
    rows = await conn.execute_fetchall(
        "SELECT store_id FROM store_staff WHERE user_id = ? ORDER BY store_id", (user_id,))
    return [row[0] for row in rows]


async def store_access(conn: Connection, user_id: int, store_id: int) -> bool | None:
    """Whether the user is staff of the store, or None when there is no such store: what
    every merchant request asks first, in one read."""
    rows = await conn.execute_fetchall(
        "SELECT EXISTS (SELECT 1 FROM store_staff WHERE user_id = ? AND store_id = s.id)"
        " FROM stores s WHERE s.id = ?", (user_id, store_id))
    return bool(rows[0][0]) if rows else None


async def bind_staff(conn: Connection, user_id: int, store_id: int, now: str) -> bool:
    cur = await conn.execute(
        "INSERT INTO store_staff (user_id, store_id, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT DO NOTHING", (user_id, store_id, now))
    return cur.rowcount == 1


async def insert_address(conn: Connection, user_id: int, district_code: str,
                         contact_masked: str, contact_enc: bytes, lat: float | None,
                         lng: float | None, now: str) -> Row:
    """The address as `address` reads it, returned by the insert itself."""
    rows = await conn.execute_fetchall(
        "INSERT INTO addresses (user_id, district_code, contact_masked, contact_enc, lat, lng,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id, district_code,"
        " (SELECT name FROM districts WHERE code = addresses.district_code) AS district,"
        " contact_masked, lat, lng, created_at",
        (user_id, district_code, contact_masked, contact_enc, lat, lng, now))
    return rows[0]


_ADDRESS = ("SELECT a.id, a.district_code, d.name AS district, a.contact_masked, a.lat, a.lng,"
            " a.created_at FROM addresses a JOIN districts d ON d.code = a.district_code")


async def address(conn: Connection, user_id: int, address_id: int) -> Row | None:
    rows = await conn.execute_fetchall(
        f"{_ADDRESS} WHERE a.id = ? AND a.user_id = ?", (address_id, user_id))
    return rows[0] if rows else None


async def sealed_addresses(conn: Connection, user_id: int) -> list[Row]:
    """A user's addresses with their ciphertext, for the copy their owner may ask for."""
    return list(await conn.execute_fetchall(
        "SELECT a.id, d.name AS district, a.contact_enc, a.lat, a.lng, a.created_at"
        " FROM addresses a JOIN districts d ON d.code = a.district_code"
        " WHERE a.user_id = ? ORDER BY a.id", (user_id,)))


async def addresses(conn: Connection, user_id: int) -> list[Row]:
    return list(await conn.execute_fetchall(
        f"{_ADDRESS} WHERE a.user_id = ? ORDER BY a.id", (user_id,)))
