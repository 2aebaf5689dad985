"""Server-wide secrets and switches kept in the database, so every process on one file
(the server, `xingcheng token`) signs and verifies with the same keys."""

from __future__ import annotations

from collections.abc import Callable

from .database import Connection


async def get_or_create(conn: Connection, key: str, make: Callable[[], str]) -> str:
    """The stored value, or `make()` stored on first use (first writer wins)."""
    value = await get(conn, key)
    if value is not None:
        return value
    await conn.execute("INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)", (key, make()))
    value = await get(conn, key)
    assert value is not None
    return value


async def get(conn: Connection, key: str) -> str | None:
    rows = await conn.execute_fetchall("SELECT value FROM settings WHERE key = ?", (key,))
    return rows[0][0] if rows else None


async def put(conn: Connection, key: str, value: str) -> None:
    await conn.execute("INSERT INTO settings (key, value) VALUES (?, ?)"
                       " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))


async def increment(conn: Connection, key: str) -> None:
    """Count one more of something (a counter others poll to notice a change)."""
    await conn.execute("INSERT INTO settings (key, value) VALUES (?, '1') ON CONFLICT (key)"
                       " DO UPDATE SET value = CAST(settings.value AS INTEGER) + 1", (key,))
