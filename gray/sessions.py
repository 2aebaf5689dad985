"""Where each customer's session went, so a customer stays on one side for a whole journey:
the request that names a store decides, and the customer's next requests that name none
(paying an order, reading it) follow it there.  Kept in memory, bounded, forgotten after a
quiet spell; cleared on every change of rules, so a rollback moves everyone at once."""

from __future__ import annotations

import time
from collections import OrderedDict


class Sessions:
    def __init__(self, ttl_s: float = 1800.0, max_customers: int = 200_000) -> None:
        self._ttl_s = ttl_s
        self._max = max_customers
        self._sides: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def last(self, user: str) -> str | None:
        found = self._sides.get(user)
        if found is None:
            return None
        if found[1] < time.monotonic():
            del self._sides[user]
            return None
        return found[0]

    def went(self, user: str, side: str) -> None:
        self._sides[user] = (side, time.monotonic() + self._ttl_s)
        self._sides.move_to_end(user)
        while len(self._sides) > self._max:
            self._sides.popitem(last=False)

    def clear(self) -> None:
        self._sides.clear()

    def __len__(self) -> int:
        return len(self._sides)
