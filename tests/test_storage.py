"""The storage engine itself, on a real SQLite file: transactions are all or nothing, and
a transaction that fails even at COMMIT leaves the writer ready for the next."""

from __future__ import annotations

import sqlite3

import pytest

from mall.storage import Database, settings
from shared.clock import Clock


@pytest.fixture
async def db(tmp_path):
    database = Database(tmp_path / "store.db", Clock())
    await database.open()
    yield database
    await database.close()


async def test_a_failing_body_rolls_back(db):
    async def half_done(conn):
        await settings.put(conn, "half", "written")
        raise ValueError("changed my mind")

    with pytest.raises(ValueError):
        await db.transaction(half_done)
    assert await settings.get(db.reader(), "half") is None


async def test_a_failed_commit_leaves_the_writer_usable(db):
    async def fails_at_commit(conn):
        await settings.put(conn, "doomed", "1")
        # A deferred foreign-key violation is only detected by COMMIT.
        await conn.execute("PRAGMA defer_foreign_keys = ON")
        await conn.execute("INSERT INTO store_staff (user_id, store_id, created_at)"
                           " VALUES (999, 999, 'never')")

    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        await db.transaction(fails_at_commit)
    await db.transaction(lambda conn: settings.put(conn, "next", "2"))
    assert await settings.get(db.reader(), "doomed") is None
    assert await settings.get(db.reader(), "next") == "2"


async def test_a_body_may_await_only_its_connection(db):
    import asyncio

    async def wanders_off(conn):
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="only its connection"):
        await db.transaction(wanders_off)
    await db.transaction(lambda conn: settings.put(conn, "still", "fine"))
    assert await settings.get(db.reader(), "still") == "fine"
