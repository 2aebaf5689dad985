"""Membership (会员体系): levels earned by spending, points earned by paying and redeemed as
a discount, and member prices.

Every movement of points happens inside the transaction that makes its cause true (an
order placed, paid, closed or refunded), through one ledger row each, at most once per order
and cause: so a balance is always its ledger's sum, whatever repeats or races."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shared.clock import Clock

from ..auth import Principal
from ..errors import BadRequest, Conflict, NotFound
from ..member_levels import Level, MembershipRules
from ..metrics import MallMetrics
from ..schemas import MemberPriceIn, PageQuery
from ..storage import Database, catalogue, membership
from ..storage.database import Connection
from ..validation import decode_cursor, encode_cursor
from . import audit_trail

_NO_CURSOR = 2**62


def present_level(level: Level) -> dict:
    return {"level": level.key, "name": level.name, "from_spent_fen": level.from_spent_yuan * 100,
            "points_per_yuan": level.points_per_10_yuan / 10}


@dataclass(frozen=True)
class Standing:
    """A member as their lock found them: spending so far, whether they have their row yet,
    and whether the order at hand has earned its points already."""
    spent: int
    joined: bool
    earned: bool


@dataclass
class Membership:
    db: Database
    clock: Clock
    metrics: MallMetrics
    rules: MembershipRules
    _looked_until: str | None = None   # every order paid before it has earned (earn_missed)

    def levels(self) -> dict:
        return {"levels": [present_level(level) for level in self.rules.level],
                "fen_per_point": self.rules.fen_per_point,
                "max_points_percent": self.rules.max_points_percent}

    async def summary(self, principal: Principal) -> dict:
        row = await membership.member(self.db.reader(), principal.user_id)
        spent, points = (row["spent_fen"], row["points"]) if row else (0, 0)
        upcoming = self.rules.next_level(spent)
        return {"member": row is not None, **present_level(self.rules.level_for(spent)),
                "points": points, "spent_fen": spent,
                "points_worth_fen": max(0, points) * self.rules.fen_per_point,
                "joined_at": row["joined_at"] if row else None,
                "fen_per_point": self.rules.fen_per_point,
                "max_points_percent": self.rules.max_points_percent,
                "next_level": None if upcoming is None else {
                    **present_level(upcoming),
                    "spend_more_fen": upcoming.from_spent_yuan * 100 - spent}}

    async def statement(self, principal: Principal, query: PageQuery) -> dict:
        """My points ledger, newest first: every change with the balance after it."""
        before = decode_cursor(query.cursor, _NO_CURSOR)
        rows = await membership.ledger(self.db.reader(), principal.user_id, before, query.limit)
        more = len(rows) == query.limit
        return {"items": [dict(row) for row in rows],
                "next_cursor": encode_cursor(rows[-1]["id"]) if more else None}

    # -- member prices -----------------------------------------------------------------------

    async def set_price(self, principal: Principal, store_id: int, sku_id: int,
                        data: MemberPriceIn) -> dict:
        if self.rules.rank(data.min_level) is None:
            raise BadRequest("unknown_level", "min_level must be one of " + ", ".join(
                level.key for level in self.rules.level), "min_level")
        sku = (await catalogue.skus_at_store(self.db.reader(), store_id, [sku_id])).get(sku_id)
        if sku is None:
            raise NotFound("sku at this store", "sku_id")
        if data.price_fen >= sku["price_fen"]:
            raise BadRequest("not_below_price", f"a member price must be below the list price "
                             f"of {sku['price_fen']} fen", "price_fen")
        now = self.clock.stamp()

        async def put(conn: Connection) -> None:
            await membership.set_member_price(conn, store_id, sku_id, data.price_fen,
                                              data.min_level, now)
            await audit_trail.record(conn, principal, now, "member_price.set", store_id=store_id,
                                     target_type="sku", target_id=sku_id,
                                     detail={"price_fen": data.price_fen,
                                             "min_level": data.min_level})

        await self.db.transaction(put)
        return {"sku_id": sku_id, "price_fen": sku["price_fen"],
                "member_price_fen": data.price_fen, "min_level": data.min_level}

    async def drop_price(self, principal: Principal, store_id: int, sku_id: int) -> dict:
        now = self.clock.stamp()

        async def drop(conn: Connection) -> None:
            if not await membership.drop_member_price(conn, store_id, sku_id):
                raise NotFound("member price of this sku at this store", "sku_id")
            await audit_trail.record(conn, principal, now, "member_price.drop",
                                     store_id=store_id, target_type="sku", target_id=sku_id)

        await self.db.transaction(drop)
        return {"sku_id": sku_id, "member_price_fen": None}

    async def prices(self, store_id: int) -> dict:
        rows = await membership.member_prices(self.db.reader(), store_id)
        return {"items": [dict(row) for row in rows]}

    # -- steps of an order's life, inside its transactions ----------------------------------

    async def level_of(self, conn: Connection, user_id: int) -> str:
        row = await membership.member(conn, user_id)
        return self.rules.level_for(row["spent_fen"] if row else 0).key

    def member_price(self, level: str, sku, served_fen: int) -> int:
        """What this level pays for a SKU row from `catalogue.skus_at_store`."""
        if sku["member_price_fen"] is None or not self.rules.may_pay(level, sku["member_level"]):
            return served_fen
        return min(served_fen, sku["member_price_fen"])

    async def points_fen(self, principal: Principal, points: int, payable_fen: int) -> int:
        """The fen `points` take off an order of `payable_fen` (after its coupon), or a 409
        naming why not: checked before the order's transaction, spent inside it (`redeem`)."""
        row = await membership.member(self.db.reader(), principal.user_id)
        balance = row["points"] if row else 0
        if points > balance:
            raise Conflict("not_enough_points", f"you have {max(balance, 0)} points",
                           "points", extra={"balance": balance})
        most = min(payable_fen * self.rules.max_points_percent // 100, payable_fen - 1)
        fen = points * self.rules.fen_per_point
        if fen > most:
            raise Conflict("points_over_limit", f"points may pay at most "
                           f"{self.rules.max_points_percent}% of this order ({most} fen)",
                           "points", extra={"max_points": most // self.rules.fen_per_point})
        return fen

    async def _standing(self, conn: Connection, user_id: int, order_id: int) -> Standing:
        """The member as a move for this order finds them, read under their lock: the level
        a move sets follows from the spending, so no concurrent move may change it before
        this transaction ends."""
        await conn.lock("member", user_id)
        row = await membership.standing(conn, user_id, order_id)
        return Standing(spent=row["spent_fen"] or 0, joined=row["spent_fen"] is not None,
                        earned=bool(row["earned"]))

    async def _move(self, conn: Connection, user_id: int, standing: Standing, *,
                    order_id: int, reason: str, points: int, stamp: str, spent_fen: int = 0,
                    at_least: int | None = None) -> bool:
        """One ledger row (see `membership.move`), the level following the spending after
        it, counted in `mall_points_total`; False when nothing moved."""
        moved = await membership.move(
            conn, user_id, joined=standing.joined, order_id=order_id, reason=reason,
            points=points, spent_fen=spent_fen,
            level=self.rules.level_for(standing.spent + spent_fen).key, now=stamp,
            at_least=at_least)
        if moved is not None:
            self.metrics.points.labels(reason).inc(abs(points))
        return moved is not None

    async def redeem(self, conn: Connection, user_id: int, order_id: int, points: int,
                     stamp: str) -> None:
        standing = await self._standing(conn, user_id, order_id)
        if not await self._move(conn, user_id, standing, order_id=order_id, reason="redeemed",
                                points=-points, stamp=stamp, at_least=points):
            raise Conflict("not_enough_points", "your points were spent meanwhile", "points")

    async def earn(self, conn: Connection, order, stamp: str) -> None:
        """The order was paid: its total counts towards the level, and earns points at the
        level the member had before it."""
        standing = await self._standing(conn, order["user_id"], order["id"])
        if standing.earned:   # by another build beside this one (`earn_missed`)
            return
        points = self.rules.earned(self.rules.level_for(standing.spent).key, order["total_fen"])
        await self._move(conn, order["user_id"], standing, order_id=order["id"],
                         reason="earned", points=points, stamp=stamp,
                         spent_fen=order["total_fen"])

    async def earn_missed(self, batch: int = 200) -> int:
        """Points for orders another build paid without earning them (an older build beside
        this one on one database, in a gray release), found among those paid since the last
        look; the first look after a start goes back to when membership began.  Orders paid
        in the last two real seconds wait for the next look: a payment being applied now
        commits with a stamp a moment old."""
        conn = self.db.reader()
        since = self._looked_until or await membership.since_membership(conn)
        before = self.clock.stamp(self.clock.now() - timedelta(seconds=2 * self.clock.speed))
        missed = await membership.unearned(conn, since, before, batch)
        for order in missed:
            await self.db.transaction(
                lambda conn, order=order: self.earn(conn, order, self.clock.stamp()))
        if len(missed) < batch:
            self._looked_until = before
        return len(missed)

    async def undo(self, conn: Connection, order, stamp: str) -> None:
        """The order closed unpaid or was refunded: points it redeemed come back, points and
        spending it earned go."""
        moved = await membership.on_order(conn, order["id"])
        redeemed, earned = moved.get("redeemed"), moved.get("earned")
        if redeemed is None and earned is None:
            return
        standing = await self._standing(conn, order["user_id"], order["id"])
        if redeemed is not None:
            await self._move(conn, order["user_id"], standing, order_id=order["id"],
                             reason="returned", points=-redeemed["points"], stamp=stamp)
        if earned is not None:
            await self._move(conn, order["user_id"], standing, order_id=order["id"],
                             reason="reversed", points=-earned["points"], stamp=stamp,
                             spent_fen=-earned["spent_fen"])
