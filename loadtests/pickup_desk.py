"""The store counter where customers' paid orders wait for staff: the customer journey
hands its order in (as a customer shows the pickup code at the counter), the staff users
take them out store by store."""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass

from .records import SessionRecord


@dataclass(frozen=True)
class Ticket:
    store_id: int
    order_id: int
    fulfilment: str          # pickup | delivery
    code: str | None         # the pickup code the customer shows
    total_fen: int
    record: SessionRecord | None = None   # the customer's session, marked completed
    # (the customer's token, a reason) when the customer will ask a refund once collected
    refund: tuple[str, str] | None = None


class PickupDesk:
    def __init__(self) -> None:
        self._waiting: dict[int, deque[Ticket]] = defaultdict(deque)
        self._stores: deque[int] = deque()

    def hand_in(self, ticket: Ticket) -> None:
        if not self._waiting[ticket.store_id]:
            self._stores.append(ticket.store_id)
        self._waiting[ticket.store_id].append(ticket)

    def take(self, limit: int = 10) -> list[Ticket]:
        """Up to `limit` tickets of the store that has waited longest."""
        if not self._stores:
            return []
        store_id = self._stores.popleft()
        queue = self._waiting[store_id]
        batch = [queue.popleft() for _ in range(min(limit, len(queue)))]
        if queue:
            self._stores.append(store_id)
        return batch

    def __len__(self) -> int:
        return sum(len(q) for q in self._waiting.values())
