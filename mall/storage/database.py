"""Connections, transactions and migrations for the embedded SQLite store.

One writer connection guarded by an asyncio lock gives serialisable write transactions
(SQLite allows one writer at a time anyway, and the lock keeps coroutines from
interleaving statements inside each other's transactions).  A few reader connections
serve the browse endpoints concurrently thanks to WAL mode.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import aiosqlite

from ..clock import Clock

_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA cache_size = -65536",
)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every shipped migration, in order."""
    found = []
    for entry in resources.files("mall").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    for pragma in _PRAGMAS:
        await conn.execute(pragma)
    return conn


class Database:
    def __init__(self, path: Path | str, clock: Clock, read_connections: int = 2) -> None:
        self.path = Path(path)
        self.clock = clock
        self._read_count = max(1, read_connections)
        self._writer: aiosqlite.Connection | None = None
        self._readers: list[aiosqlite.Connection] = []
        self._next_reader = itertools.cycle(range(self._read_count))
        self._write_lock = asyncio.Lock()

    async def open(self) -> None:
        self._writer = await _connect(self.path)
        await self.migrate()
        self._readers = [await _connect(self.path) for _ in range(self._read_count)]

    async def close(self) -> None:
        for conn in [*self._readers, self._writer]:
            if conn is not None:
                await conn.close()
        self._readers, self._writer = [], None

    async def migrate(self) -> list[str]:
        """Apply every migration not yet recorded; each in its own transaction."""
        conn = self._writer
        assert conn is not None
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in await conn.execute_fetchall(
            "SELECT version FROM schema_migrations")}
        applied = []
        for version, name, sql in migrations():
            if version in done:
                continue
            # executescript commits first, so the whole script plus its record run as one
            # explicit transaction inside it.
            await conn.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\n"
                f"INSERT INTO schema_migrations VALUES ({version}, '{name}', "
                f"'{self.clock.now().isoformat()}');\nCOMMIT;"
            )
            applied.append(name)
        return applied

    @asynccontextmanager
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
        """A serialised write transaction: committed on success, rolled back on any error."""
        async with self._write_lock:
            conn = self._writer
            assert conn is not None, "database is not open"
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    def reader(self) -> aiosqlite.Connection:
        """A connection for single-statement reads outside any write transaction."""
        return self._readers[next(self._next_reader)]
