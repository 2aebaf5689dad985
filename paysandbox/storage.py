"""All of the sandbox's SQL, on one SQLite file of its own.

One connection, and a lock around each write transaction: the sandbox serves one city's
payments, a few hundred a second at most.  WAL with synchronous=NORMAL keeps every commit
through a killed process (only a power cut may lose the last ones).  Statements run on the
event loop itself: each takes microseconds on this small file, where a hop to a connection
thread and back (aiosqlite) cost the sandbox 40% of its CPU at the late-night crest, on the
cores it shares with the mall under test."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from sqlite3 import Row
from typing import Any, TypeVar

SCHEMA = Path(__file__).with_name("schema.sql")
T = TypeVar("T")
_TRANSACTION = ("SELECT out_trade_no, prepay_id, mchid, appid, description, amount_fen, openid,"
                " notify_url, trade_state, transaction_id, success_time, created_at"
                " FROM transactions")

_REFUND = ("SELECT r.out_refund_no, r.refund_id, r.out_trade_no, r.amount_fen, r.reason,"
           " r.status, r.success_time, r.created_at, t.amount_fen AS total_fen, t.transaction_id,"
           " t.mchid FROM refunds r JOIN transactions t ON t.out_trade_no = r.out_trade_no")


class Connection:
    """One sqlite3 connection with the awaitable calls the sandbox's SQL is written against."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.row_factory = sqlite3.Row

    async def execute(self, sql: str, parameters: Iterable[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, tuple(parameters))

    async def execute_fetchall(self, sql: str, parameters: Iterable[Any] = ()) -> list[Row]:
        return self._conn.execute(sql, tuple(parameters)).fetchall()

    async def executescript(self, script: str) -> None:
        self._conn.executescript(script)

    async def close(self) -> None:
        self._conn.close()


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self._conn = Connection(self.path)
        await self._conn.execute("PRAGMA journal_mode = WAL")
        await self._conn.execute("PRAGMA synchronous = NORMAL")
        await self._conn.execute("PRAGMA busy_timeout = 5000")
        await self._conn.executescript(SCHEMA.read_text(encoding="utf-8"))

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    @property
    def conn(self) -> Connection:
        assert self._conn is not None, "the store is not open"
        return self._conn

    async def write(self, body: Callable[[Connection], Awaitable[T]]) -> T:
        """Run `body` in one write transaction: all of it lands, or none."""
        async with self._lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                result = await body(self.conn)
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")
            return result

    async def _one(self, sql: str, args: tuple) -> Row | None:
        rows = await self.conn.execute_fetchall(sql, args)
        return rows[0] if rows else None

    async def by_out_trade_no(self, out_trade_no: str) -> Row | None:
        return await self._one(f"{_TRANSACTION} WHERE out_trade_no = ?", (out_trade_no,))

    async def by_prepay(self, prepay_id: str) -> Row | None:
        return await self._one(f"{_TRANSACTION} WHERE prepay_id = ?", (prepay_id,))

    async def refund(self, out_refund_no: str) -> Row | None:
        return await self._one(f"{_REFUND} WHERE r.out_refund_no = ?", (out_refund_no,))

    async def refunded_fen(self, out_trade_no: str) -> int:
        row = await self._one("SELECT coalesce(sum(amount_fen), 0) FROM refunds"
                              " WHERE out_trade_no = ?", (out_trade_no,))
        return int(row[0]) if row else 0

    async def due(self, now: float, limit: int) -> list[Row]:
        return list(await self.conn.execute_fetchall(
            "SELECT id, out_trade_no, url, body, attempts FROM outbox"
            " WHERE state = 'pending' AND due_at <= ? ORDER BY due_at LIMIT ?", (now, limit)))

    async def setting(self, key: str) -> str | None:
        row = await self._one("SELECT value FROM settings WHERE key = ?", (key,))
        return row[0] if row else None

    async def pending_count(self) -> int:
        row = await self._one("SELECT count(*) FROM outbox WHERE state = 'pending'", ())
        return int(row[0]) if row else 0


async def insert_transaction(conn: Connection, *, out_trade_no: str, prepay_id: str,
                             mchid: str, appid: str, description: str, amount_fen: int,
                             openid: str, notify_url: str, now: str) -> None:
    await conn.execute(
        "INSERT INTO transactions (out_trade_no, prepay_id, mchid, appid, description,"
        " amount_fen, openid, notify_url, trade_state, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'NOTPAY', ?, ?)",
        (out_trade_no, prepay_id, mchid, appid, description, amount_fen, openid, notify_url,
         now, now))


async def settle(conn: Connection, out_trade_no: str, state: str,
                 transaction_id: str | None, success_time: str | None, now: str) -> bool:
    """Move an unpaid transaction to its final state; False when it was not unpaid."""
    rows = await conn.execute_fetchall(
        "UPDATE transactions SET trade_state = ?, transaction_id = ?, success_time = ?,"
        " updated_at = ? WHERE out_trade_no = ? AND trade_state = 'NOTPAY' RETURNING 1",
        (state, transaction_id, success_time, now, out_trade_no))
    return bool(rows)


async def enqueue(conn: Connection, notification_id: str, out_trade_no: str, url: str,
                  body: bytes, due_at: float) -> None:
    await conn.execute(
        "INSERT INTO outbox (id, out_trade_no, url, body, due_at, state)"
        " VALUES (?, ?, ?, ?, ?, 'pending')", (notification_id, out_trade_no, url, body, due_at))


async def attempted(conn: Connection, notification_id: str, state: str, result: str,
                    due_at: float, now: float) -> None:
    """Record one delivery attempt: delivered, given up, or pending again at `due_at`."""
    await conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, state = ?, last_result = ?, due_at = ?,"
        " delivered_at = CASE WHEN ? = 'delivered' THEN ? END WHERE id = ?",
        (state, result, due_at, state, now, notification_id))


async def put_setting(conn: Connection, key: str, value: str) -> None:
    await conn.execute("INSERT INTO settings (key, value) VALUES (?, ?)"
                       " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))


async def insert_refund(conn: Connection, *, out_refund_no: str, refund_id: str,
                        out_trade_no: str, amount_fen: int, reason: str | None,
                        notify_url: str, success_time: str, now: str) -> None:
    """A refund, settled at once: the sandbox's wallet takes the money back immediately."""
    await conn.execute(
        "INSERT INTO refunds (out_refund_no, refund_id, out_trade_no, amount_fen, reason,"
        " notify_url, status, success_time, created_at) VALUES (?, ?, ?, ?, ?, ?, 'SUCCESS', ?, ?)",
        (out_refund_no, refund_id, out_trade_no, amount_fen, reason, notify_url, success_time,
         now))
