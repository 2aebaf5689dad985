"""Flash sales (秒杀): thousands of customers tap "buy" within a second or two for a few
units.

Every unit is sold by the database: a conditional update of the sale's `taken` count inside
the order's own serialised transaction, under a CHECK, so no number of buyers in any number
of processes on one database sells more than the quantity.  What this process keeps in
memory is what makes the crowd cheap: the sale's terms (fixed once created), and, once it
has seen the sale sold out, that fact, so the crowd's refusals are answered without the
database.  The sold-out fact is trusted for `recheck_seconds` only: a unit comes back when an
order closes unpaid, here or in another process, and the first buyer after that interval
asks the database again (the others still hear "sold out" from memory until that probe has
its answer: one database transaction per interval, not one per tap that arrives meanwhile).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from sqlite3 import Row

from shared.clock import Clock

from ..auth import Principal
from ..errors import ApiError, BadRequest, Conflict, NotFound
from ..metrics import MallMetrics
from ..schemas import FlashOrderIn, FlashSaleIn, FlashSalesQuery, OrderIn, OrderLineIn
from ..storage import Database, flash_sales, inventory, stores
from ..storage.database import Connection
from . import audit_trail
from .campaign_terms import check_offer
from .orders import Offer, Orders

SOLD_OUT = "this flash sale is sold out"


def present(sale: Row, now: str) -> dict:
    left = sale["quantity"] - sale["taken"]
    state = ("upcoming" if now < sale["starts_at"] else "ended" if now >= sale["ends_at"]
             else "sold_out" if left == 0 else "on")
    return {"sale_id": sale["id"], "state": state, "left": left, **{key: sale[key] for key in (
        "title", "store_id", "store_name", "sku_id", "product_name", "price_fen",
        "list_price_fen", "quantity", "per_user_limit", "starts_at", "ends_at",
        "pay_within_seconds")}}


@dataclass
class FlashSales:
    db: Database
    clock: Clock
    metrics: MallMetrics
    orders: Orders
    recheck_seconds: float
    _terms: dict[int, Row] = field(default_factory=dict)
    # Each known sale's window as instants, for the door (comparing two datetimes costs a
    # tenth of writing the clock's stamp).
    _windows: dict[int, tuple[datetime, datetime]] = field(default_factory=dict)
    _sold_out_until: dict[int, float] = field(default_factory=dict)   # monotonic seconds
    # Customers who bought in a sale through this process: a retry of theirs (same
    # Idempotency-Key) must reach the database to be handed its order, sold out or not.
    _buyers: dict[int, set[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The door's counter, labelled once: it counts thousands of taps a second.
        self.refused_at_the_door = self.metrics.flash_sale_refusals.labels("sold_out", "memory")

    async def create(self, principal: Principal, store_id: int, data: FlashSaleIn) -> dict:
        await check_offer(self.db.reader(), store_id, data.sku_id, data.price_fen, "price_fen",
                          data.starts_at, data.ends_at)
        if data.ends_at <= self.clock.now():
            raise BadRequest("already_ended", "ends_at is in the past (mall clock)", "ends_at")
        if data.per_user_limit > data.quantity:
            raise BadRequest("limit_above_quantity", "per_user_limit exceeds quantity",
                             "per_user_limit")
        now = self.clock.stamp()

        async def insert(conn: Connection) -> int:
            # The sale's units are checked against the shelf, not set aside: orders made
            # outside the sale may still take them (they are refused then as out of stock).
            level = await inventory.level(conn, store_id, data.sku_id)
            available = level["available"] if level else 0
            if available < data.quantity:
                raise Conflict("not_enough_stock", f"only {available} available to sell",
                               "quantity", extra={"available": available})
            sale_id = await flash_sales.insert(
                conn, store_id=store_id, sku_id=data.sku_id, title=data.title,
                price_fen=data.price_fen, quantity=data.quantity,
                per_user_limit=data.per_user_limit, starts_at=self.clock.stamp(data.starts_at),
                ends_at=self.clock.stamp(data.ends_at),
                pay_within_seconds=data.pay_within_seconds, created_by=principal.user_id,
                now=now)
            await audit_trail.record(conn, principal, now, "flash_sale.create",
                                     store_id=store_id, target_type="flash_sale",
                                     target_id=sale_id,
                                     detail={"sku_id": data.sku_id, "quantity": data.quantity,
                                             "price_fen": data.price_fen})
            return sale_id

        sale_id = await self.db.transaction(insert)
        return present(await flash_sales.sale(self.db.reader(), sale_id), now)

    async def listing(self, query: FlashSalesQuery) -> dict:
        conn = self.db.reader()
        district_code = None
        if query.district is not None:
            district_code = await stores.district_code(conn, query.district)
            if district_code is None:
                raise BadRequest("unknown_district", "district is not one of Changsha's",
                                 "district")
        now = self.clock.stamp()
        rows = await flash_sales.not_ended(conn, now, query.store_id, district_code,
                                           query.limit)
        return {"items": [present(row, now) for row in rows]}

    async def one(self, sale_id: int) -> dict:
        sale = await flash_sales.sale(self.db.reader(), sale_id)
        if sale is None:
            raise NotFound("flash sale", "sale_id")
        return present(sale, self.clock.stamp())

    async def buy(self, principal: Principal, sale_id: int, data: FlashOrderIn,
                  idempotency_key: str | None) -> tuple[dict, bool]:
        """(order summary, replayed?), or a 409 naming why not: not started, ended, over
        the per-customer limit, sold out."""
        sale = await self._sale(sale_id)
        try:
            self._check(principal, sale, data, idempotency_key)
        except Conflict as refusal:
            self.metrics.flash_sale_refusals.labels(refusal.code, "memory").inc()
            raise
        left: list[int] = []

        async def take(conn: Connection, order_id: int, stamp: str) -> None:
            held = await flash_sales.bought_by(conn, sale_id, principal.user_id)
            if held + data.qty > sale["per_user_limit"]:
                raise Conflict("flash_sale_limit_reached", f"at most {sale['per_user_limit']} "
                               "per customer in this sale", "qty", extra={"held": held})
            remaining = await flash_sales.take(conn, sale_id, data.qty)
            if remaining is None:
                raise Conflict("sold_out", SOLD_OUT, "sale_id")
            await flash_sales.insert_order(conn, sale_id, order_id, principal.user_id, data.qty)
            left.append(remaining)

        order = OrderIn(store_id=sale["store_id"],
                        lines=[OrderLineIn(sku_id=sale["sku_id"], qty=data.qty)],
                        fulfilment=data.fulfilment, pickup_point_id=data.pickup_point_id,
                        address_id=data.address_id)
        offer = Offer({sale["sku_id"]: sale["price_fen"]}, sale["pay_within_seconds"], take)
        try:
            summary, replayed = await self.orders.create(principal, order, idempotency_key,
                                                         offer)
        except ApiError as refusal:
            if refusal.code == "sold_out":
                self._mark_sold_out(sale_id)
            if isinstance(refusal, Conflict):
                self.metrics.flash_sale_refusals.labels(refusal.code, "database").inc()
            raise
        if left:
            self.metrics.flash_sale_units.labels("taken").inc(data.qty)
            self._buyers.setdefault(sale_id, set()).add(principal.user_id)
            if left[0] == 0:
                self._mark_sold_out(sale_id)
            else:   # units came back: the crowd may buy again
                self._sold_out_until.pop(sale_id, None)
        return summary | {"flash_sale_id": sale_id}, replayed

    def _check(self, principal: Principal, sale: Row, data: FlashOrderIn,
               idempotency_key: str | None) -> None:
        """The refusals this process can give without the database."""
        now = self.clock.stamp()
        if now < sale["starts_at"]:
            raise Conflict("flash_sale_not_started", f"this sale starts at {sale['starts_at']}",
                           "sale_id", extra={"starts_at": sale["starts_at"]})
        if now >= sale["ends_at"]:
            raise Conflict("flash_sale_ended", f"this sale ended at {sale['ends_at']}",
                           "sale_id")
        if data.qty > sale["per_user_limit"]:
            raise Conflict("flash_sale_limit_reached", f"at most {sale['per_user_limit']} per "
                           "customer in this sale", "qty")
        if self._known_sold_out(sale["id"], principal.user_id, idempotency_key is not None):
            raise Conflict("sold_out", SOLD_OUT, "sale_id")

    def sold_out_at_the_door(self, sale_id: int, user_id: int, keyed: bool) -> bool:
        """Whether a tap on this sale can be refused as sold out before anything else runs
        (the door in front of the request path, `mall/flash_sale_door.py`): the sale's terms
        are known here, it is within its window, and this process knows it sold out."""
        window = self._windows.get(sale_id)
        if window is None or not window[0] <= self.clock.now() < window[1]:
            return False
        return self._known_sold_out(sale_id, user_id, keyed, probe=False)

    def _known_sold_out(self, sale_id: int, user_id: int, keyed: bool,
                        probe: bool = True) -> bool:
        """True while this process's memory says sold out.  A buyer's retry (the same
        Idempotency-Key) always reaches the database, to be handed its order.  Once the
        memory lapses, the tap that `probe`s asks the database and the crowd behind it is
        still answered from memory meanwhile (one probe per interval, not a stampede); the
        door does not probe, it lets the tap through to the service, which does."""
        until = self._sold_out_until.get(sale_id)
        if until is None or (keyed and user_id in self._buyers.get(sale_id, ())):
            return False
        if until > time.monotonic():
            return True
        if probe:
            self._mark_sold_out(sale_id)
        return False

    def _mark_sold_out(self, sale_id: int) -> None:
        self._sold_out_until[sale_id] = time.monotonic() + self.recheck_seconds

    async def _sale(self, sale_id: int) -> Row:
        """The sale's terms, read once: they never change after creation."""
        sale = self._terms.get(sale_id)
        if sale is None:
            sale = await flash_sales.sale(self.db.reader(), sale_id)
            if sale is None:
                raise NotFound("flash sale", "sale_id")
            self._terms[sale_id] = sale
            self._windows[sale_id] = (datetime.fromisoformat(sale["starts_at"]),
                                      datetime.fromisoformat(sale["ends_at"]))
        return sale
