"""Server-wide secrets and switches kept in the database, so every process on one file
(the server, `xingcheng token`) signs and verifies with the same keys."""

from __future__ import annotations

from collections.abc import Callable

from aiosqlite import Connection


async def get_or_create(conn: Connection, key: str, make: Callable[[], str]) -> str:
    """The stored value, or `make()` stored on first use (first writer wins)."""
    rows = await conn.execute_fetchall("SELECT value FROM settings WHERE key = ?", (key,))
    if rows:
        return rows[0][0]
    await conn.execute("INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)", (key, make()))
    rows = await conn.execute_fetchall("SELECT value FROM settings WHERE key = ?", (key,))
    return rows[0][0]
