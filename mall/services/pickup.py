"""In-store pickup (门店自提) and delivery hand-over, as the store's staff works them.

A pickup order gets its code when it is paid; staff mark it ready, then complete it by
verifying the code the customer shows.  Wrong codes are counted per order and the order
locks after a few, so a code cannot be guessed at the counter."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from shared.clock import Clock

from ..auth import Principal
from ..errors import Conflict, NotFound, TooManyRequests, Unprocessable
from ..metrics import MallMetrics
from ..storage import Database, orders
from . import audit_trail
from .orders import Orders, present


@dataclass
class Pickup:
    db: Database
    clock: Clock
    metrics: MallMetrics
    orders: Orders
    max_failures: int

    async def _order(self, store_id: int, order_id: int, fulfilment: str):
        order = await orders.for_staff(self.db.reader(), order_id)
        if order is None or order["store_id"] != store_id:
            raise NotFound("order", "order_id")
        if order["fulfilment"] != fulfilment:
            raise Conflict("wrong_fulfilment", f"this is a {order['fulfilment']} order",
                           "order_id")
        if order["group_status"] not in (None, "succeeded"):
            raise Conflict("group_not_formed", f"this order's group is {order['group_status']}:"
                           " its goods wait until the group fills", "order_id")
        return order

    async def _move(self, principal: Principal, store_id: int, order, from_states, to_state,
                    change: str, **stamps) -> dict:
        stamp = self.clock.stamp()

        async def move(conn):
            changed = await orders.move(conn, order["id"], from_states, to_state,
                                        **{k: stamp for k in stamps})
            if changed is None:
                raise Conflict("wrong_state", f"the order is {order['status']}", "order_id")
            await audit_trail.record(conn, principal, stamp, f"order.{change}",
                                     store_id=store_id, target_type="order",
                                     target_id=order["id"])
            return changed

        changed = await self.db.transaction(move)
        self.metrics.orders.labels(change).inc()
        return present(changed, await self.orders.facts.lines(self.db.reader(), order["id"]),
                       for_customer=False)

    async def mark_ready(self, principal: Principal, store_id: int, order_id: int) -> dict:
        order = await self._order(store_id, order_id, "pickup")
        return await self._move(principal, store_id, order, ("paid",), "ready_for_pickup",
                                "ready", ready_at=True)

    async def dispatch(self, principal: Principal, store_id: int, order_id: int) -> dict:
        order = await self._order(store_id, order_id, "delivery")
        return await self._move(principal, store_id, order, ("paid",), "out_for_delivery",
                                "dispatched")

    async def delivered(self, principal: Principal, store_id: int, order_id: int) -> dict:
        order = await self._order(store_id, order_id, "delivery")
        return await self._complete(principal, store_id, order, ("out_for_delivery",))

    async def verify(self, principal: Principal, store_id: int, order_id: int,
                     code: str) -> dict:
        order = await self._order(store_id, order_id, "pickup")
        if order["status"] not in ("paid", "ready_for_pickup"):
            raise Conflict("wrong_state", f"the order is {order['status']}", "order_id")
        if order["pickup_failures"] >= self.max_failures:
            raise TooManyRequests("pickup_locked", "too many wrong codes; the customer must "
                                  "contact the store", "code")
        if not hmac.compare_digest(code, order["pickup_code"] or ""):
            self.metrics.pickup_code_failures.inc()
            stamp = self.clock.stamp()

            async def count_failure(conn) -> int:
                failures = await orders.count_pickup_failure(conn, order_id)
                await audit_trail.record(conn, principal, stamp, "order.pickup.wrong_code",
                                         store_id=store_id, target_type="order",
                                         target_id=order_id)
                return failures

            failures = await self.db.transaction(count_failure)
            raise Unprocessable("wrong_pickup_code", "the pickup code does not match", "code",
                                extra={"attempts_left": max(self.max_failures - failures, 0)})
        return await self._complete(principal, store_id, order, ("paid", "ready_for_pickup"))

    async def _complete(self, principal: Principal, store_id: int, order, from_states) -> dict:
        stamp = self.clock.stamp()

        async def complete(conn):
            completed = await self.orders.hand_over(conn, order["id"], from_states, stamp)
            if completed is None:
                raise Conflict("wrong_state", f"the order is {order['status']}", "order_id")
            await audit_trail.record(conn, principal, stamp, "order.complete",
                                     store_id=store_id, target_type="order",
                                     target_id=order["id"])
            return completed

        completed, lines = await self.db.transaction(complete)
        self.metrics.orders.labels("completed").inc()
        return present(completed, lines, for_customer=False)
