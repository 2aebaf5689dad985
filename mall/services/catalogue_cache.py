"""What a store's catalogue shows (serialised pages, a scene's offers), kept exact rather
than merely fresh, across processes.

An entry is served only for the store's catalogue version it was read at.  The version lives
in the database, bumped by triggers in the very transaction that changes what a page shows
(migration 0007), so a write by any process serving the same database (the other build of
a gray release, an operator tool) is seen by the next lookup here; a version kept in this
process's memory would only see its own writes.  The version is read before the page is
queried, so a read that raced a write stores its page under the older version and it is
never served after the write.  Browsing is most of the traffic and a page costs ~500 us to
query and serialise; a hit costs one primary-key read of a few microseconds.  Versions read
in one turn of the event loop are reused within it, until this process commits a write.  On
PostgreSQL the database announces each new version to every process, and a lookup waits only
until the announcements committed before it have arrived (mall/storage/postgresql.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any

from ..storage import Database, catalogue


class CatalogueCache:
    def __init__(self, db: Database, max_entries: int = 20_000) -> None:
        self._db = db
        self._this_turn: dict[int, int | None] = {}   # store -> version, read this turn
        self._turn_commits = -1                       # the process's commits when read
        self._entries: dict[Hashable, tuple[int, Any]] = {}
        self._max_entries = max_entries

    async def lookup(self, store_id: int, key: Hashable) -> tuple[Any, int | None]:
        """(the entry if current, else None; the store's version now); a None version means
        the version could not be read, and the caller must neither use nor store an entry."""
        return (await self.lookup_many([store_id], key))[store_id]

    async def lookup_many(self, store_ids: list[int],
                          key: Hashable) -> dict[int, tuple[Any, int | None]]:
        """`lookup` for several stores, waiting once for the versions to be current."""
        if self._db.engine == "postgresql":
            await self._db.catalogue_caught_up()
        return {store_id: self._current(store_id, key) for store_id in store_ids}

    def _current(self, store_id: int, key: Hashable) -> tuple[Any, int | None]:
        version = self.version(store_id)
        found = self._entries.get((store_id, key))
        if version is not None and found is not None and found[0] == version:
            return found[1], version
        return None, version

    def version(self, store_id: int) -> int | None:
        if self._db.engine == "postgresql":   # announced to this process: no read at all
            return self._db.catalogue_version(store_id)
        if self._turn_commits != self._db.commits:   # our own write: read afresh
            self._this_turn.clear()
            self._turn_commits = self._db.commits
        if store_id in self._this_turn:
            return self._this_turn[store_id]
        if not self._this_turn:  # the first read of this turn: forget them all next turn
            asyncio.get_running_loop().call_soon(self._this_turn.clear)
        version = self._this_turn[store_id] = catalogue.catalogue_version(
            self._db.on_loop(), store_id)
        return version

    def put(self, store_id: int, key: Hashable, version: int | None, entry: Any) -> None:
        if version is None:
            return
        if len(self._entries) >= self._max_entries:
            self._entries.clear()  # crude but bounded; a full cache refills in a second
        self._entries[(store_id, key)] = (version, entry)
