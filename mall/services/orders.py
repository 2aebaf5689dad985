"""Orders from creation to their end, and the stock they hold on the way.

Stock is reserved inside the same serialised write transaction that creates the order,
by a conditional update that refuses to go below zero; if any line cannot be reserved
the whole transaction rolls back, so an order never holds part of its goods."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from sqlite3 import Row

from shared.clock import SHANGHAI, Clock

from ..auth import Principal
from ..errors import ApiError, BadRequest, Conflict, NotFound, Unprocessable
from ..metrics import MallMetrics
from ..opening_hours import is_open
from ..pricing import ServedPrice, stored
from ..schemas import OrderIn, PageQuery, StoreOrdersQuery
from ..storage import (
    Database,
    catalogue,
    coupons,
    flash_sales,
    inventory,
    orders,
    payments,
    stores,
    users,
)
from ..storage.database import Connection, DatabaseUnavailable
from ..validation import decode_cursor, encode_cursor
from .coupons import Coupons
from .membership import Membership
from .write_once import WriteOnce

log = logging.getLogger("mall.orders")
ORDER_STATES = ("pending_payment", "paid", "ready_for_pickup", "out_for_delivery", "completed",
                "cancelled", "expired", "refund_requested", "refunded", "refund_rejected")
_CODE_VISIBLE = ("paid", "ready_for_pickup")
_NO_CURSOR = 2**62


def present(order, lines, *, for_customer: bool) -> dict:
    data = {key: order[key] for key in (
        "id", "store_id", "status", "fulfilment", "pickup_point_id", "address_id",
        "total_fen", "points_used", "points_fen", "created_at", "expires_at", "paid_at",
        "ready_at", "closed_at")}
    data["order_id"] = data.pop("id")
    data["lines"] = [dict(line) for line in lines]
    if for_customer and order["status"] in _CODE_VISIBLE and order["pickup_code"]:
        data["pickup_code"] = order["pickup_code"]
    return data


def _page(rows, limit: int, for_customer: bool) -> dict:
    items = [present(row, [], for_customer=for_customer) for row in rows]
    for item in items:
        del item["lines"]
    more = len(rows) == limit
    return {"items": items, "next_cursor": encode_cursor(rows[-1]["id"]) if more else None}


class _KeyTaken(Exception):
    """The Idempotency-Key was claimed by a twin request that committed first."""


@dataclass(frozen=True)
class Offer:
    """A campaign's terms for one order (a flash sale's, a group buy's): the prices it sells
    at, how long the order may stay unpaid (mall clock), and its step inside the order's
    own transaction, which takes the campaign's units or raises to refuse the whole order."""
    prices: dict[int, int]
    ttl_seconds: float
    take: Callable[[Connection, int, str], Awaitable[None]]


@dataclass
class Orders:
    db: Database
    clock: Clock
    metrics: MallMetrics
    ttl_seconds: float
    coupons: Coupons
    membership: Membership
    facts: WriteOnce
    price: ServedPrice = stored

    async def create(self, principal: Principal, data: OrderIn, idempotency_key: str | None,
                     offer: Offer | None = None) -> tuple[dict, bool]:
        """(order summary, replayed?) — a replay returns the order the key first made."""
        sku_ids = [line.sku_id for line in data.lines]
        for index, sku_id in enumerate(sku_ids):
            if sku_ids.index(sku_id) != index:
                raise BadRequest("duplicate_line", "each SKU may appear on one line only",
                                 f"lines.{index}.sku_id")
        request_hash = hashlib.sha256(data.model_dump_json().encode()).hexdigest()
        # A retry is answered with the order its key made, whatever has changed since (its
        # coupon used, its points spent, the store closed): a check that fails looks for
        # that order first, and the transaction meets a key taken meanwhile.  Looking before
        # any check cost every order a round trip for the rare retry.
        try:
            store, point_id, skus = await self._check(principal, data)
            if offer is not None:
                for sku_id, price_fen in offer.prices.items():
                    skus[sku_id]["price_fen"] = price_fen
            subtotal = sum(skus[line.sku_id]["price_fen"] * line.qty for line in data.lines)
            discount = 0
            if data.coupon_id is not None:
                discount = await self.coupons.discount(principal, data.coupon_id, store,
                                                       subtotal)
            points_fen = 0
            if data.points is not None:
                points_fen = await self.membership.points_fen(principal, data.points,
                                                              subtotal - discount)
        except ApiError:
            replay = (await self._replay(principal, idempotency_key, request_hash)
                      if idempotency_key is not None else None)
            if replay is None:
                raise
            return replay, True
        now = self.clock.now()
        stamp = self.clock.stamp(now)
        ttl = offer.ttl_seconds if offer is not None else self.ttl_seconds
        expires = self.clock.stamp(now + timedelta(seconds=ttl))
        total = subtotal - discount - points_fen

        async def place(conn) -> dict:
            # One of a customer's orders at a time: the key, their coupon, their points and
            # a campaign's per-customer limit are read before they are written.
            await conn.lock("customer", principal.user_id)
            # The order row first, so each reservation's ledger row names it; a line out of
            # stock rolls the whole transaction back, order row included.
            order_id = await orders.insert(
                conn, user_id=principal.user_id, store_id=data.store_id,
                fulfilment=data.fulfilment, pickup_point_id=point_id,
                address_id=data.address_id, total_fen=total, now=stamp, expires_at=expires,
                points_used=data.points or 0, points_fen=points_fen)
            # The key is claimed next, before any stock: a twin that committed since the
            # check above makes this a replay, and the whole transaction rolls back.
            if idempotency_key is not None and not await orders.claim_key(
                    conn, principal.user_id, idempotency_key, request_hash, order_id, stamp):
                raise _KeyTaken
            if offer is not None:  # before the shelf: a sold-out sale says so, not "no stock"
                await offer.take(conn, order_id, stamp)
            # Rows locked in one order (by SKU) everywhere, so two baskets never deadlock.
            for index, line in sorted(enumerate(data.lines), key=lambda item: item[1].sku_id):
                if not await inventory.reserve(conn, data.store_id, line.sku_id, line.qty,
                                               stamp):
                    self.metrics.out_of_stock.inc()
                    raise Conflict("out_of_stock", "not enough stock for this line",
                                   f"lines.{index}.sku_id",
                                   extra={"sku_id": line.sku_id})
            await orders.insert_lines(conn, order_id, [
                (line.sku_id, skus[line.sku_id]["name"], skus[line.sku_id]["price_fen"],
                 line.qty) for line in data.lines])
            await inventory.reserved_for(conn, data.store_id, order_id, stamp)
            if data.coupon_id is not None:
                await self.coupons.use(conn, data.coupon_id, order_id, discount, stamp)
            if data.points is not None:
                await self.membership.redeem(conn, principal.user_id, order_id, data.points,
                                             stamp)
            return {"order_id": order_id, "status": "pending_payment", "total_fen": total,
                    "discount_fen": discount, "coupon_id": data.coupon_id,
                    "points_used": data.points or 0, "points_fen": points_fen,
                    "expires_at": expires}

        try:
            summary = await self.db.transaction(place)
        except _KeyTaken:
            replay = await self._replay(principal, idempotency_key or "", request_hash)
            assert replay is not None, "a taken key names its order"
            return replay, True
        self.facts.placed(summary["order_id"], [
            {"line_no": no, "sku_id": line.sku_id, "product_name": skus[line.sku_id]["name"],
             "unit_price_fen": skus[line.sku_id]["price_fen"], "qty": line.qty}
            for no, line in enumerate(data.lines, start=1)])
        self.metrics.orders.labels("created").inc()
        if data.coupon_id is not None:
            self.metrics.coupon_redemptions.labels("used").inc()
        return summary, False

    async def _replay(self, principal: Principal, key: str, request_hash: str) -> dict | None:
        conn = self.db.reader()
        prior = await orders.idempotent_order(conn, principal.user_id, key)
        if prior is None:
            return None
        if prior["request_hash"] != request_hash:
            raise Unprocessable("idempotency_key_reused",
                                "this Idempotency-Key was used with a different body",
                                "Idempotency-Key")
        order = await orders.order(conn, prior["order_id"])
        used = await coupons.on_order(conn, order["id"])
        return {"order_id": order["id"], "status": order["status"],
                "total_fen": order["total_fen"],
                "discount_fen": used["discount_fen"] if used else 0,
                "coupon_id": used["id"] if used else None, "points_used": order["points_used"],
                "points_fen": order["points_fen"], "expires_at": order["expires_at"]}

    async def _check(self, principal: Principal, data: OrderIn) -> tuple[Row, int | None, dict]:
        """Everything an order refers to must exist and belong together."""
        conn = self.db.reader()
        store = await self.facts.store_with_counter(conn, data.store_id)
        if store is None:
            raise NotFound("store", "store_id")
        if not is_open(store["opens_at"], store["closes_at"], self.clock.now()):
            raise Conflict("store_closed", f"store opens {store['opens_at']}-"
                           f"{store['closes_at']}", "store_id")
        point_id = None
        if data.fulfilment == "pickup":
            if data.address_id is not None:
                raise BadRequest("not_for_pickup", "pickup orders take no address",
                                 "address_id")
            if data.pickup_point_id is None:
                point_id = store["counter_id"]
            else:
                point = await stores.pickup_point(conn, data.pickup_point_id)
                if point is None or point["store_id"] != data.store_id:
                    raise NotFound("pickup point at this store", "pickup_point_id")
                point_id = point["id"]
        else:
            if data.pickup_point_id is not None:
                raise BadRequest("not_for_delivery", "delivery orders take no pickup point",
                                 "pickup_point_id")
            if data.address_id is None:
                raise BadRequest("address_required", "delivery needs an address_id",
                                 "address_id")
            if await users.address(conn, principal.user_id, data.address_id) is None:
                raise NotFound("address", "address_id")
        skus = await catalogue.skus_at_store(conn, data.store_id,
                                             [line.sku_id for line in data.lines])
        for index, line in enumerate(data.lines):
            if line.sku_id not in skus:
                raise NotFound("sku at this store", f"lines.{index}.sku_id")
        # The customer's level matters only where a SKU has a member price.
        level = (await self.membership.level_of(conn, principal.user_id)
                 if any(row["member_price_fen"] is not None for row in skus.values()) else "")
        served = {sku_id: {"name": row["name"], "price_fen": self.membership.member_price(
                      level, row, self.price(sku_id, row["price_fen"]))}
                  for sku_id, row in skus.items()}
        return store, point_id, served

    async def mine(self, principal: Principal, order_id: int) -> dict:
        conn = self.db.reader()
        order = await orders.for_customer(conn, order_id)
        if order is None or order["user_id"] != principal.user_id:
            raise NotFound("order", "order_id")
        data = present(order, await self.facts.lines(conn, order_id), for_customer=True)
        data["coupon"] = ({"coupon_id": order["coupon_id"],
                           "discount_fen": order["coupon_discount_fen"]}
                          if order["coupon_id"] is not None else None)
        data["flash_sale_id"] = order["flash_sale_id"]
        return data

    async def list_mine(self, principal: Principal, query: PageQuery) -> dict:
        before = decode_cursor(query.cursor, _NO_CURSOR)
        rows = await orders.for_user(self.db.reader(), principal.user_id, before, query.limit)
        return _page(rows, query.limit, for_customer=True)

    async def for_store(self, store_id: int, order_id: int) -> dict:
        conn = self.db.reader()
        order = await orders.order(conn, order_id)
        if order is None or order["store_id"] != store_id:
            raise NotFound("order", "order_id")
        return present(order, await self.facts.lines(conn, order_id), for_customer=False)

    async def store_day(self, store_id: int, query: StoreOrdersQuery) -> dict:
        """A store's orders of one local day (today on the mall clock by default)."""
        if query.status is not None and query.status not in ORDER_STATES:
            raise BadRequest("unknown_status", f"status must be one of {', '.join(ORDER_STATES)}",
                             "status")
        try:
            day = (datetime.strptime(query.date, "%Y-%m-%d").replace(tzinfo=SHANGHAI)
                   if query.date else self.clock.now().replace(hour=0, minute=0, second=0,
                                                               microsecond=0))
        except ValueError as exc:
            raise BadRequest("invalid_date", "date must be a real YYYY-MM-DD day",
                             "date") from exc
        before = decode_cursor(query.cursor, _NO_CURSOR)
        rows = await orders.for_store(
            self.db.reader(), store_id, since=self.clock.stamp(day),
            until=self.clock.stamp(day + timedelta(days=1)),
            statuses=(query.status,) if query.status else None, before_id=before,
            limit=query.limit)
        page = _page(rows, query.limit, for_customer=False)
        page["date"] = day.date().isoformat()
        return page

    async def pickup_queue(self, store_id: int, limit: int = 50) -> dict:
        """Oldest first, each with how long its customer has waited since paying (mall
        clock), as the store's dashboard shows it."""
        rows = await orders.pickup_queue(self.db.reader(), store_id, limit)
        now = self.clock.now()
        return {"now": self.clock.stamp(now), "items": [
            present(row, [], for_customer=False) | {"lines": None, "waiting_s": round(
                (now - datetime.fromisoformat(row["paid_at"])).total_seconds(), 1)}
            for row in rows]}

    async def cancel(self, principal: Principal, order_id: int) -> dict:
        order = await orders.order(self.db.reader(), order_id)
        if order is None or order["user_id"] != principal.user_id:
            raise NotFound("order", "order_id")
        if not await self.close(order_id, "cancelled"):
            raise Conflict("not_cancellable",
                           f"an order that is {order['status']} cannot be cancelled here",
                           "order_id")
        return await self.mine(principal, order_id)

    async def close(self, order_id: int, to_state: str) -> bool:
        """Cancel or expire an unpaid order and give its stock back; False if it was not
        unpaid any more (paid or closed by a concurrent request)."""
        stamp = self.clock.stamp()
        store_id = await self.db.transaction(
            lambda conn: self.close_in(conn, order_id, to_state, stamp))
        if store_id is None:
            return False
        self.metrics.orders.labels(to_state).inc()
        return True

    async def close_in(self, conn: Connection, order_id: int, to_state: str,
                        stamp: str) -> int | None:
        """The store whose stock came back, or None when the order was no longer unpaid."""
        order = await orders.move(conn, order_id, ("pending_payment",), to_state,
                                  closed_at=stamp)
        if order is None:
            return None
        await inventory.release(conn, order["store_id"], await self.facts.lines(conn, order_id),
                                order_id, stamp)
        await payments.close_open(conn, order_id, stamp)
        await self.membership.undo(conn, order, stamp)
        if await coupons.give_back(conn, order_id):
            self.metrics.coupon_redemptions.labels("returned").inc()
        units = await flash_sales.give_back(conn, order_id, stamp)
        if units:
            self.metrics.flash_sale_units.labels("returned").inc(units)
        return order["store_id"]

    async def expire_due(self, batch: int = 200) -> int:
        """Expire unpaid orders past their time, each in a transaction of its own (on
        PostgreSQL one transaction over two hundred orders' stock would meet the crest's
        concurrent ones at every turn; on SQLite a turn's commits are grouped anyway);
        returns how many.  One that cannot be expired now is left to the next sweep."""
        stamp = self.clock.stamp()
        expired = 0
        for order_id in await orders.due_for_expiry(self.db.reader(), stamp, batch):
            try:
                store_id = await self.db.transaction(
                    lambda conn, order_id=order_id: self.close_in(conn, order_id, "expired",
                                                                  stamp))
            except DatabaseUnavailable as exc:
                log.warning("order %s not expired this sweep: %s", order_id, exc)
                continue
            expired += store_id is not None
        self.metrics.orders.labels("expired").inc(expired)
        return expired

    async def audit_stock(self, since: str) -> int:
        """Units promised beyond stock among SKUs changed since `since`, and beyond the
        quantity of flash sales running since then (must stay 0); each finding is logged and
        counted in `mall_stock_oversold_total`."""
        conn = self.db.reader()
        found = await inventory.oversold_since(conn, since)
        excess = sum(row["held"] - row["on_hand"] for row in found)
        for row in found:
            log.error("oversold: store %s sku %s holds %s for orders with %s on hand",
                      row["store_id"], row["sku_id"], row["held"], row["on_hand"])
        for row in await flash_sales.oversold_since(conn, since):
            excess += row["held"] - row["quantity"]
            log.error("oversold: flash sale %s holds %s for orders of %s units",
                      row["sale_id"], row["held"], row["quantity"])
        self.metrics.stock_oversold.inc(excess)
        return excess

    async def refund_in(self, conn: Connection, order_id: int, stamp: str) -> None:
        """Inside the transaction that settles its refund: the order is refunded; goods it
        still held go back on the shelf (and it closes), its coupon and the points it
        redeemed come back, the points it earned go.  Units of a flash sale stay sold: the
        sale may be over."""
        order = await orders.order(conn, order_id)
        holding = order["closed_at"] is None
        await orders.move(conn, order_id, (order["status"],), "refunded",
                          **({"closed_at": stamp} if holding else {}))
        if holding:
            await inventory.release(conn, order["store_id"], await self.facts.lines(conn, order_id),
                                    order_id, stamp)
        if await coupons.give_back(conn, order_id):
            self.metrics.coupon_redemptions.labels("returned").inc()
        await self.membership.undo(conn, order, stamp)

    async def hand_over(self, conn: Connection, order_id: int, from_states: tuple[str, ...],
                        stamp: str) -> tuple[Row, list[Row]] | None:
        """Complete an order whose goods leave the store: reserved stock leaves the shelf.
        The order as completed and its lines, or None when its state had changed."""
        order = await orders.move(conn, order_id, from_states, "completed", closed_at=stamp,
                                  handed_over_at=stamp)
        if order is None:
            return None
        lines = await self.facts.lines(conn, order_id)
        await inventory.hand_over(conn, order["store_id"], lines, order_id, stamp)
        return order, lines
