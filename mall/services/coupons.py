"""Coupons (优惠券): templates merchants and operators issue, claims customers make, and the
discount one coupon takes off one order.

The server alone computes a discount, in fen, from the order's own subtotal: a client only
names the coupon.  A claim and a use are each one conditional update inside a serialised
write transaction, so neither the template's quantity, the per-customer limit nor a
coupon's single use can be beaten by concurrent requests, in one process or in two."""

from __future__ import annotations

from dataclasses import dataclass

from shared.clock import Clock

from ..auth import Principal
from ..errors import BadRequest, Conflict, NotFound
from ..metrics import MallMetrics
from ..schemas import CouponsQuery, CouponTemplateIn
from ..storage import Database, coupons, stores
from ..storage.database import Connection
from . import audit_trail
from .write_once import WriteOnce

# What each kind needs, and what it must leave out.
_NEEDS = {"threshold": ("threshold_fen", "discount_fen"), "fixed": ("discount_fen",),
          "percent": ("percent_off",)}
_LEAVES = {"threshold": ("percent_off", "cap_fen"), "fixed": ("percent_off", "cap_fen"),
           "percent": ("discount_fen",)}
# Which field places a scope, and the scope fields it must leave out.
_SCOPE_FIELD = {"store": "store_id", "district": "district", "campus": "campus", "city": None}


def discount_for(template, subtotal_fen: int) -> int:
    """Fen a template takes off a subtotal it applies to; an order still costs at least
    one fen, as WeChat Pay takes no payment of zero."""
    if template["kind"] == "percent":
        off = subtotal_fen * template["percent_off"] // 100
        if template["cap_fen"] is not None:
            off = min(off, template["cap_fen"])
    else:
        off = template["discount_fen"]
    return max(0, min(off, subtotal_fen - 1))


def applies_to(template, store) -> bool:
    scope = template["scope"]
    return (scope == "city"
            or (scope == "store" and template["store_id"] == store["id"])
            or (scope == "district" and template["district_code"] == store["district_code"])
            or (scope == "campus" and template["campus"] == store["business_circle"]))


def present_template(row) -> dict:
    data = {key: row[key] for key in (
        "title", "kind", "threshold_fen", "discount_fen", "percent_off", "cap_fen", "scope",
        "store_id", "district", "campus", "starts_at", "ends_at", "total_qty",
        "per_user_limit")}
    return {"template_id": row["id"], **data, "left": row["total_qty"] - row["claimed"]}


@dataclass
class Coupons:
    db: Database
    clock: Clock
    metrics: MallMetrics
    facts: WriteOnce

    async def issue(self, principal: Principal, data: CouponTemplateIn,
                    store_id: int | None = None) -> dict:
        """A new template; `store_id` when a merchant issues one for their own store."""
        if store_id is not None:
            if data.scope != "store":
                raise BadRequest("store_scope_only", "a store issues coupons for itself only: "
                                 "scope must be store", "scope")
            if data.store_id not in (None, store_id):
                raise BadRequest("another_store", "store_id must be this store's", "store_id")
            data = data.model_copy(update={"store_id": store_id})
        self._check_shape(data)
        conn = self.db.reader()
        district_code = None
        if data.scope == "store" and await stores.store(conn, data.store_id) is None:
            raise NotFound("store", "store_id")
        if data.scope == "district":
            district_code = await stores.district_code(conn, data.district)
            if district_code is None:
                raise BadRequest("unknown_district", "district is not one of Changsha's",
                                 "district")
        if data.scope == "campus" and not await stores.circle_has_stores(conn, data.campus):
            raise BadRequest("unknown_campus", "no store is in this campus's business circle",
                             "campus")
        now = self.clock.stamp()

        async def insert(conn: Connection) -> int:
            template_id = await coupons.insert_template(
                conn, title=data.title, kind=data.kind, threshold_fen=data.threshold_fen,
                discount_fen=data.discount_fen, percent_off=data.percent_off,
                cap_fen=data.cap_fen, scope=data.scope, store_id=data.store_id,
                district_code=district_code, campus=data.campus,
                starts_at=self.clock.stamp(data.starts_at),
                ends_at=self.clock.stamp(data.ends_at), total_qty=data.total_qty,
                per_user_limit=data.per_user_limit, created_by=principal.user_id, now=now)
            await audit_trail.record(conn, principal, now, "coupon.create",
                                     store_id=data.store_id, target_type="coupon_template",
                                     target_id=template_id,
                                     detail={"title": data.title, "scope": data.scope,
                                             "total_qty": data.total_qty})
            return template_id

        template_id = await self.db.transaction(insert)
        return present_template(await coupons.template(self.db.reader(), template_id))

    @staticmethod
    def _check_shape(data: CouponTemplateIn) -> None:
        for name in _NEEDS[data.kind]:
            if not getattr(data, name):
                raise BadRequest("missing_field", f"a {data.kind} coupon needs {name}", name)
        for name in _LEAVES[data.kind]:
            if getattr(data, name) is not None:
                raise BadRequest("not_for_kind", f"a {data.kind} coupon takes no {name}", name)
        if data.kind == "threshold" and data.discount_fen >= data.threshold_fen:
            raise BadRequest("discount_not_below_threshold",
                             "a 满减 coupon takes off less than its threshold", "discount_fen")
        placing = _SCOPE_FIELD[data.scope]
        for name in filter(None, _SCOPE_FIELD.values()):
            given = getattr(data, name) is not None
            if name == placing and not given:
                raise BadRequest("missing_field", f"scope {data.scope} needs {name}", name)
            if name != placing and given:
                raise BadRequest("not_for_scope", f"scope {data.scope} takes no {name}", name)
        if data.ends_at <= data.starts_at:
            raise BadRequest("empty_window", "ends_at must be after starts_at", "ends_at")

    async def claimable(self, query: CouponsQuery) -> dict:
        """Templates a customer may claim now; with `store_id`, those usable at that store."""
        conn = self.db.reader()
        rows = await coupons.claimable(conn, self.clock.stamp(), 500)
        if query.store_id is not None:
            store = await self.facts.store(conn, query.store_id)
            if store is None:
                raise NotFound("store", "store_id")
            rows = [row for row in rows if applies_to(row, store)]
        return {"items": [present_template(row) for row in rows[:query.limit]]}

    async def claim(self, principal: Principal, template_id: int) -> dict:
        now = self.clock.stamp()

        async def claim(conn: Connection) -> int:
            await conn.lock("customer", principal.user_id)   # their claims counted, then one more
            template = await coupons.template(conn, template_id)
            if template is None:
                raise NotFound("coupon template", "template_id")
            self._in_window(template, now, "template_id")
            if (await coupons.claims_of(conn, template_id, principal.user_id)
                    >= template["per_user_limit"]):
                raise Conflict("coupon_limit_reached", f"at most {template['per_user_limit']} "
                               "of this coupon per customer", "template_id")
            if not await coupons.take_one(conn, template_id):
                raise Conflict("coupons_gone", "none of this coupon are left", "template_id")
            return await coupons.insert_coupon(conn, template_id, principal.user_id, now)

        try:
            coupon_id = await self.db.transaction(claim)
        except Conflict as refusal:
            self.metrics.coupon_refusals.labels(refusal.code).inc()
            raise
        self.metrics.coupon_claims.inc()
        template = await coupons.template(self.db.reader(), template_id)
        return {"coupon_id": coupon_id, "status": "available", **present_template(template)}

    async def mine(self, principal: Principal) -> dict:
        rows = await coupons.for_user(self.db.reader(), principal.user_id)
        return {"items": [dict(row) for row in rows]}

    async def discount(self, principal: Principal, coupon_id: int, store,
                       subtotal_fen: int) -> int:
        """The fen this customer's coupon takes off this store's subtotal, or a 4xx naming
        why it may not: checked before the order's transaction, and the use itself is made
        conditional inside it (`use`)."""
        conn = self.db.reader()
        coupon = await coupons.coupon(conn, coupon_id)
        try:
            if coupon is None or coupon["user_id"] != principal.user_id:
                raise NotFound("coupon", "coupon_id")
            if coupon["status"] != "available":
                raise Conflict("coupon_used", "this coupon was used already", "coupon_id")
            template = await coupons.template(conn, coupon["template_id"])
            self._in_window(template, self.clock.stamp(), "coupon_id")
            if not applies_to(template, store):
                raise Conflict("coupon_not_for_this_store", "this coupon is not valid at this "
                               "store", "coupon_id")
            if subtotal_fen < template["threshold_fen"]:
                raise Conflict("coupon_below_threshold", f"this coupon needs an order of "
                               f"{template['threshold_fen']} fen or more", "coupon_id")
        except (NotFound, Conflict) as refusal:
            self.metrics.coupon_refusals.labels(refusal.code).inc()
            raise
        return discount_for(template, subtotal_fen)

    async def use(self, conn: Connection, coupon_id: int, order_id: int, discount_fen: int,
                  stamp: str) -> None:
        """Inside the order's transaction: the coupon is spent, or the order is not made."""
        if not await coupons.use(conn, coupon_id, order_id, discount_fen, stamp):
            self.metrics.coupon_refusals.labels("coupon_used").inc()
            raise Conflict("coupon_used", "this coupon was used already", "coupon_id")

    @staticmethod
    def _in_window(template, now: str, field: str) -> None:
        if now < template["starts_at"]:
            raise Conflict("coupon_not_started", f"this coupon starts at {template['starts_at']}",
                           field)
        if now >= template["ends_at"]:
            raise Conflict("coupon_expired", f"this coupon ended at {template['ends_at']}",
                           field)
