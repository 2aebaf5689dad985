"""Serialised catalogue pages, kept exact rather than merely fresh.

Every change to a store's products or available stock bumps that store's version (the
mall is the only writer of its database), and a page is served only for the version it was
read at.  A read that raced a write stores its page under the older version, so it is
never served after the write.  Browsing is most of the traffic and a page costs ~500 us to
query and serialise; a hit costs a dictionary lookup."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable


class CatalogueCache:
    def __init__(self, max_pages: int = 20_000) -> None:
        self._versions: defaultdict[int, int] = defaultdict(int)
        self._pages: dict[Hashable, tuple[int, bytes]] = {}
        self._max_pages = max_pages

    def version(self, store_id: int) -> int:
        return self._versions[store_id]

    def changed(self, *store_ids: int) -> None:
        for store_id in store_ids:
            self._versions[store_id] += 1

    def get(self, store_id: int, key: Hashable) -> bytes | None:
        found = self._pages.get((store_id, key))
        if found is not None and found[0] == self._versions[store_id]:
            return found[1]
        return None

    def put(self, store_id: int, key: Hashable, version: int, page: bytes) -> None:
        if len(self._pages) >= self._max_pages:
            self._pages.clear()  # crude but bounded; a full cache refills in a second
        self._pages[(store_id, key)] = (version, page)
