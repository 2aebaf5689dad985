"""What a store's catalogue shows (pages, a scene's offers), kept exact rather than merely
fresh, across processes.

An entry is served only for the store's catalogue version it was read at.  The versions
live in the database, bumped by triggers in the very transaction that changes what a page
shows (migrations 0007 and 0018), so a write by any process serving the same database (the
other build of a gray release, an operator tool) is seen by the next lookup here; a version
kept in this process's memory would only see its own writes.  The version is read before the
page is queried, so a read that raced a write stores its page under the older version and it
is never served after the write.

Pages are kept under the version of what they show apart from stock, and take the units
available from the database each time they are served: stock changes with every order, and
a page kept under a version that stock moves too was read afresh nine times in ten at the
late-night crest.  On SQLite that read is a few microseconds on the loop's own connection;
on PostgreSQL it is the query that catches up with the versions the database announced
(mall/storage/postgresql.py), one round trip shared by the lookups arriving together.  A
scene's offers (in stock or not) are kept under the version that stock moves too."""

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
        # SQLite: (store, page) -> (version stock moves too, content version, stock) read
        self._seen: dict[Hashable, tuple[int, int, dict[int, int]]] = {}
        self._max_entries = max_entries

    async def lookup(self, store_id: int, key: Hashable) -> tuple[Any, int | None]:
        """(the entry if current, else None; the store's version now); a None version means
        the version could not be read, and the caller must neither use nor store an entry."""
        return (await self.lookup_many([store_id], key))[store_id]

    async def lookup_many(self, store_ids: list[int],
                          key: Hashable) -> dict[int, tuple[Any, int | None]]:
        """`lookup` for several stores, waiting once for the versions to be current."""
        if self._db.engine == "postgresql":
            await self._db.catalogue_now()
        return {store_id: self._current(store_id, key, self.version(store_id))
                for store_id in store_ids}

    async def page(self, store_id: int, key: Hashable
                   ) -> tuple[Any, int | None, dict[int, int] | None]:
        """(the page kept if what it shows apart from stock is current, else None; that
        version now; the units available now of each SKU the kept page shows, a SKU the
        store does not stock absent).  A None version: as in `lookup`."""
        kept = self._entries.get((store_id, key))
        sku_ids = kept[1][1] if kept is not None else []
        if self._db.engine == "postgresql":
            now = await self._db.catalogue_now([(store_id, sku_id) for sku_id in sku_ids])
            stock = None if now is None else {sku_id: now[store_id, sku_id]
                                              for sku_id in sku_ids if (store_id, sku_id) in now}
            version = self._db.content_version(store_id)
        else:
            version, stock = self._sqlite_now(store_id, key, sku_ids if kept else None)
        page, version = self._current(store_id, key, version)
        if page is None or stock is None:
            return None, version, None
        return page[0], version, stock

    def _sqlite_now(self, store_id: int, key: Hashable, sku_ids: list[int] | None
                    ) -> tuple[int | None, dict[int, int] | None]:
        """(content version, stock of `sku_ids`) on SQLite, as last read for this page while
        the version that stock moves too stands (one read a loop turn for every page of the
        store), else read again: a page asked for between two orders reads nothing more."""
        full = self.version(store_id)
        seen = self._seen.get((store_id, key))
        if sku_ids is not None and full is not None and seen is not None and seen[0] == full:
            return seen[1], seen[2]
        loop_reads = self._db.on_loop()
        version = catalogue.content_version(loop_reads, store_id)
        if sku_ids is None:
            return version, None
        stock = catalogue.available_now(loop_reads, store_id, sku_ids)
        if full is not None and version is not None and stock is not None:
            if len(self._seen) >= self._max_entries:
                self._seen.clear()
            self._seen[(store_id, key)] = (full, version, stock)
        return version, stock

    def put_page(self, store_id: int, key: Hashable, version: int | None, page: Any,
                 sku_ids: list[int]) -> None:
        """Keep a page (without its stock) under its content version, with the SKUs whose
        stock it shows."""
        self.put(store_id, key, version, (page, sku_ids))

    def _current(self, store_id: int, key: Hashable,
                 version: int | None) -> tuple[Any, int | None]:
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
