"""Group buys (拼团): a campaign sells one SKU at a group price to groups that must fill in
time.  A customer opens a group with an order of their own; others join it by its id or its
share code.  The group succeeds when enough members have paid (decided in the transaction
that applies the payment); at its deadline an unfilled group fails: unpaid orders are
cancelled (their stock released) and paid ones refunded through the payer, once each.

A member's order is an ordinary order made with the campaign's `Offer`: the price is the
group's, and joining (group still open, not full, not yet a member) is decided inside the
order's own transaction, so concurrent joiners never overfill a group."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.clock import Clock

from ..auth import Principal
from ..errors import Conflict, NotFound
from ..metrics import MallMetrics
from ..schemas import CampaignOrderIn, GroupBuyIn, GroupBuysQuery, OrderIn, OrderLineIn
from ..storage import Database, group_buys, refunds
from ..storage.database import Connection
from . import audit_trail
from .after_sales import AfterSales
from .campaign_terms import check_offer
from .orders import Offer, Orders

log = logging.getLogger("mall.group_buys")


def present_campaign(row) -> dict:
    return {"group_buy_id": row["id"], **{key: row[key] for key in (
        "title", "store_id", "store_name", "sku_id", "product_name", "group_price_fen",
        "list_price_fen", "group_size", "time_limit_seconds", "starts_at", "ends_at")}}


def present_group(row) -> dict:
    return {"group_id": row["id"], "group_buy_id": row["group_buy_id"],
            "share_code": row["share_code"], "share_path": f"/groups/{row['share_code']}",
            "status": row["status"], "group_size": row["group_size"],
            "members": row["members"], "paid": row["paid"], "opened_at": row["opened_at"],
            "deadline_at": row["deadline_at"], "closed_at": row["closed_at"]}


@dataclass
class GroupBuys:
    db: Database
    clock: Clock
    metrics: MallMetrics
    orders: Orders
    after_sales: AfterSales

    async def create(self, principal: Principal, store_id: int, data: GroupBuyIn) -> dict:
        await check_offer(self.db.reader(), store_id, data.sku_id, data.group_price_fen,
                          "group_price_fen", data.starts_at, data.ends_at)
        now = self.clock.stamp()

        async def insert(conn: Connection) -> int:
            campaign_id = await group_buys.insert_campaign(
                conn, store_id=store_id, sku_id=data.sku_id, title=data.title,
                group_price_fen=data.group_price_fen, group_size=data.group_size,
                time_limit_seconds=data.time_limit_minutes * 60,
                starts_at=self.clock.stamp(data.starts_at),
                ends_at=self.clock.stamp(data.ends_at), created_by=principal.user_id, now=now)
            await audit_trail.record(conn, principal, now, "group_buy.create", store_id=store_id,
                                     target_type="group_buy", target_id=campaign_id,
                                     detail={"sku_id": data.sku_id,
                                             "group_size": data.group_size})
            return campaign_id

        campaign_id = await self.db.transaction(insert)
        return present_campaign(await group_buys.campaign(self.db.reader(), campaign_id))

    async def listing(self, query: GroupBuysQuery) -> dict:
        rows = await group_buys.campaigns_on(self.db.reader(), self.clock.stamp(),
                                             query.store_id, query.limit)
        return {"items": [present_campaign(row) for row in rows]}

    async def group(self, group_id: int) -> dict:
        row = await group_buys.group(self.db.reader(), group_id)
        if row is None:
            raise NotFound("group", "group_id")
        return present_group(row)

    async def group_by_code(self, share_code: str) -> dict:
        row = await group_buys.group_by_code(self.db.reader(), share_code)
        if row is None:
            raise NotFound("group", "share_code")
        return present_group(row)

    async def open(self, principal: Principal, campaign_id: int, data: CampaignOrderIn,
                   idempotency_key: str | None) -> tuple[dict, bool]:
        """A new group, led by this customer's order."""
        campaign = await self._campaign_on(campaign_id)
        made: list[int] = []

        async def take(conn: Connection, order_id: int, stamp: str) -> None:
            deadline = datetime.fromisoformat(stamp) + timedelta(
                seconds=campaign["time_limit_seconds"])
            group_id = await group_buys.insert_group(
                conn, campaign_id, principal.user_id, secrets.token_hex(4).upper(), stamp,
                self.clock.stamp(deadline))
            await group_buys.insert_member(conn, group_id, order_id, principal.user_id, stamp)
            made.append(group_id)

        summary, replayed = await self._order(principal, campaign, data, idempotency_key, take)
        if made:
            self.metrics.groups.labels("opened").inc()
        return await self._with_group(summary), replayed

    async def join(self, principal: Principal, group_id: int, data: CampaignOrderIn,
                   idempotency_key: str | None) -> tuple[dict, bool]:
        group = await group_buys.group(self.db.reader(), group_id)
        if group is None:
            raise NotFound("group", "group_id")
        campaign = await self._campaign_on(group["group_buy_id"])
        joined: list[int] = []

        async def take(conn: Connection, order_id: int, stamp: str) -> None:
            await conn.lock("group", group_id)   # its members counted, then one more
            now = await group_buys.group(conn, group_id)
            if now["status"] != "open" or now["deadline_at"] <= stamp:
                raise Conflict("group_closed", f"this group is {now['status']}"
                               if now["status"] != "open" else "this group's time is up",
                               "group_id")
            if await group_buys.is_member(conn, group_id, principal.user_id):
                raise Conflict("already_in_group", "you are in this group already", "group_id")
            if now["members"] >= now["group_size"]:
                raise Conflict("group_full", f"this group has its {now['group_size']} members",
                               "group_id")
            await group_buys.insert_member(conn, group_id, order_id, principal.user_id, stamp)
            joined.append(order_id)

        summary, replayed = await self._order(principal, campaign, data, idempotency_key, take)
        if joined:
            self.metrics.groups.labels("joined").inc()
        return await self._with_group(summary), replayed

    async def fail_due(self, batch: int = 50) -> int:
        """Fail the open groups whose time is up: unpaid members' orders are cancelled and
        paid members refunded (each refund made once, sent to the payer at once and again
        by the sweeper until it is accepted).  Returns how many groups failed."""
        stamp = self.clock.stamp()
        due = await group_buys.due_to_fail(self.db.reader(), stamp, batch)
        failed = 0
        for group_id in due:
            async def fail(conn: Connection, group_id: int = group_id) -> list[int]:
                await conn.lock("group", group_id)   # no member joins while it fails
                if not await group_buys.fail(conn, group_id, stamp):
                    return []
                to_refund = []
                for order in await group_buys.member_orders(conn, group_id):
                    if order["status"] == "pending_payment":
                        await self.orders.close_in(conn, order["id"], "cancelled", stamp)
                    elif order["status"] == "paid" and \
                            await self.after_sales.refund_failed_group_order(conn, order, stamp):
                        to_refund.append(order["id"])
                return to_refund

            to_refund = await self.db.transaction(fail)
            failed += 1
            self.metrics.groups.labels("failed").inc()
            for order_id in to_refund:
                self.metrics.refunds.labels("approved", "group_failed").inc()
                await self.after_sales.send(await refunds.for_order(self.db.reader(), order_id))
        return failed

    async def _campaign_on(self, campaign_id: int):
        campaign = await group_buys.campaign(self.db.reader(), campaign_id)
        if campaign is None:
            raise NotFound("group buy", "group_buy_id")
        now = self.clock.stamp()
        if not campaign["starts_at"] <= now < campaign["ends_at"]:
            raise Conflict("group_buy_not_on", f"this group buy runs {campaign['starts_at']} to "
                           f"{campaign['ends_at']}", "group_buy_id")
        return campaign

    async def _order(self, principal: Principal, campaign, data: CampaignOrderIn,
                     idempotency_key: str | None, take) -> tuple[dict, bool]:
        order = OrderIn(store_id=campaign["store_id"],
                        lines=[OrderLineIn(sku_id=campaign["sku_id"], qty=1)],
                        fulfilment=data.fulfilment, pickup_point_id=data.pickup_point_id,
                        address_id=data.address_id)
        offer = Offer({campaign["sku_id"]: campaign["group_price_fen"]},
                      self.orders.ttl_seconds, take)
        return await self.orders.create(principal, order, idempotency_key, offer)

    async def _with_group(self, summary: dict) -> dict:
        group = await group_buys.group_of_order(self.db.reader(), summary["order_id"])
        return summary | {"group": present_group(group) if group else None}
