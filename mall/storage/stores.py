"""Stores, their pickup points, and the district and kind tables they refer to."""

from __future__ import annotations

from sqlite3 import Row

from .database import Connection


async def district_code(conn: Connection, name_or_code: str) -> str | None:
    rows = await conn.execute_fetchall(
        "SELECT code FROM districts WHERE code = ?1 OR name = ?1", (name_or_code,))
    return rows[0][0] if rows else None


async def kind_exists(conn: Connection, kind: str) -> bool:
    return bool(await conn.execute_fetchall("SELECT 1 FROM store_kinds WHERE code = ?", (kind,)))


async def kinds(conn: Connection) -> list[str]:
    return [r[0] for r in await conn.execute_fetchall("SELECT code FROM store_kinds ORDER BY 1")]


async def insert_store(conn: Connection, *, name: str, kind: str, district_code: str,
                       business_circle: str | None, lat: float, lng: float, opens_at: str,
                       closes_at: str, now: str) -> int:
    rows = await conn.execute_fetchall(
        "INSERT INTO stores (name, kind, district_code, business_circle, lat, lng, opens_at,"
        " closes_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (name, kind, district_code, business_circle, lat, lng, opens_at, closes_at, now))
    return rows[0][0]


async def insert_pickup_point(conn: Connection, *, store_id: int, kind: str, name: str,
                              lat: float, lng: float, now: str) -> int:
    rows = await conn.execute_fetchall(
        "INSERT INTO pickup_points (store_id, kind, name, lat, lng, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING id", (store_id, kind, name, lat, lng, now))
    return rows[0][0]


_COLUMNS = ("SELECT s.id, s.name, s.kind, s.district_code, d.name AS district,"
            " s.business_circle, s.lat, s.lng, s.opens_at, s.closes_at")
_FROM = " FROM stores s JOIN districts d ON d.code = s.district_code"
_STORE = _COLUMNS + _FROM


async def store(conn: Connection, store_id: int) -> Row | None:
    rows = await conn.execute_fetchall(f"{_STORE} WHERE s.id = ?", (store_id,))
    return rows[0] if rows else None


async def store_with_counter(conn: Connection, store_id: int) -> Row | None:
    """The store and its first pickup point (`counter_id`: the counter it was opened with),
    what an order reads of it, in one read."""
    rows = await conn.execute_fetchall(
        f"{_COLUMNS}, (SELECT min(id) FROM pickup_points WHERE store_id = s.id) AS counter_id"
        f"{_FROM} WHERE s.id = ?", (store_id,))
    return rows[0] if rows else None


async def stores_in_box(conn: Connection, lat_min: float, lat_max: float, lng_min: float,
                        lng_max: float, district_code: str | None) -> list[Row]:
    sql = f"{_STORE} WHERE s.lat BETWEEN ? AND ? AND s.lng BETWEEN ? AND ?"
    params: list = [lat_min, lat_max, lng_min, lng_max]
    if district_code is not None:
        sql += " AND s.district_code = ?"
        params.append(district_code)
    return list(await conn.execute_fetchall(sql, params))


async def stores_in_district(conn: Connection, district_code: str | None) -> list[Row]:
    if district_code is None:
        return list(await conn.execute_fetchall(f"{_STORE} ORDER BY s.id"))
    return list(await conn.execute_fetchall(
        f"{_STORE} WHERE s.district_code = ? ORDER BY s.id", (district_code,)))


async def pickup_points(conn: Connection, store_id: int) -> list[Row]:
    return list(await conn.execute_fetchall(
        "SELECT id, kind, name, lat, lng FROM pickup_points WHERE store_id = ? ORDER BY id",
        (store_id,)))


async def pickup_point(conn: Connection, pickup_point_id: int) -> Row | None:
    rows = await conn.execute_fetchall(
        "SELECT id, store_id, kind, name FROM pickup_points WHERE id = ?", (pickup_point_id,))
    return rows[0] if rows else None


async def count_by_district(conn: Connection) -> dict[str, int]:
    rows = await conn.execute_fetchall(
        "SELECT d.name, count(s.id) FROM districts d LEFT JOIN stores s"
        " ON s.district_code = d.code GROUP BY d.code ORDER BY d.code")
    return {row[0]: row[1] for row in rows}


async def circle_has_stores(conn: Connection, business_circle: str) -> bool:
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM stores WHERE business_circle = ? LIMIT 1", (business_circle,))
    return bool(rows)
