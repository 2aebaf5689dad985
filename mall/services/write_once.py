"""Rows that never change once written, kept by each process after their first read.

A store's row and its counter, who is staff of which store, Changsha's districts and an
order's lines are written once and then only read: no build updates or deletes them (staff
are added, never removed; stores are opened, never closed down in the database; an order's
lines are fixed when it is placed).  So a row read once stays true for good, across every
process serving the database, and needs no version and no invalidation.  At the late-night
crest these reads were one statement in six, each a round trip to PostgreSQL, asked again
for every merchant request, every order and every order page.  Only what was found is kept:
a store or a staff binding not found yet may be added by another process a moment later.
A build that starts to update or delete one of these rows must version it as the catalogue
is versioned (catalogue_cache.py), and take it out of here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from sqlite3 import Row
from typing import Any

from ..storage import orders, stores, users
from ..storage.database import Connection

MAX_KEPT = 50_000   # rows per kind: a few MB; a full kind starts over


class WriteOnce:
    def __init__(self, max_kept: int = MAX_KEPT) -> None:
        self._max_kept = max_kept
        self._stores: dict[int, Row] = {}
        self._counters: dict[int, Row] = {}
        self._staff: set[tuple[int, int]] = set()
        self._districts: dict[str, str] = {}
        self._lines: dict[int, list[Row]] = {}

    def _keep(self, kept: dict | set, key: Any, value: Any = None) -> None:
        if len(kept) >= self._max_kept:
            kept.clear()   # crude but bounded; what is still asked for comes back at once
        if isinstance(kept, set):
            kept.add(key)
        else:
            kept[key] = value

    async def _kept_or_read(self, kept: dict, key: Any,
                            read: Callable[[], Awaitable[Any]]) -> Any:
        """What `kept` holds under `key`, else `read()`, kept when something was found."""
        found = kept.get(key)
        if found is None:
            found = await read()
            if found:
                self._keep(kept, key, found)
        return found

    async def store(self, conn: Connection, store_id: int) -> Row | None:
        return await self._kept_or_read(self._stores, store_id,
                                        lambda: stores.store(conn, store_id))

    async def store_with_counter(self, conn: Connection, store_id: int) -> Row | None:
        """The store with its first pickup point (`counter_id`), as an order reads it; kept
        once it has one (a later point has a later id and is never the first)."""
        found = self._counters.get(store_id)
        if found is None:
            found = await stores.store_with_counter(conn, store_id)
            if found is not None and found["counter_id"] is not None:
                self._keep(self._counters, store_id, found)
        return found

    async def store_access(self, conn: Connection, user_id: int, store_id: int) -> bool | None:
        """`users.store_access`: whether the user is staff of the store (None: no store)."""
        if (user_id, store_id) in self._staff:
            return True
        staff = await users.store_access(conn, user_id, store_id)
        if staff:
            self._keep(self._staff, (user_id, store_id))
        return staff

    async def district_code(self, conn: Connection, name_or_code: str) -> str | None:
        return await self._kept_or_read(self._districts, name_or_code,
                                        lambda: stores.district_code(conn, name_or_code))

    async def lines(self, conn: Connection, order_id: int) -> list[Row]:
        """An order's lines: written with the order in one transaction, so a reader sees all
        of them or none (none is not kept)."""
        return await self._kept_or_read(self._lines, order_id,
                                        lambda: orders.lines(conn, order_id))

    def placed(self, order_id: int, lines: list[dict]) -> None:
        """The lines of an order this process has just committed, as `lines` reads them:
        the pages that follow an order (its status, the store's hand-over) read none."""
        self._keep(self._lines, order_id, lines)
