"""After-sales (售后): a customer asks for a refund of a paid order, before or after pickup;
the store approves or rejects it; the payer pays it back and says so in a notification.  A
rejected request for goods still in the store puts the order back where it was (it can still
be picked up); for goods handed over it ends as refund_rejected.

The money moves once: the refund's number at the payer (`out_refund_no`) is fixed when it is
asked, so sending it again after a crash or a timeout is the same refund; the payer's
notification and the answer to a query settle it alike, by a conditional update (approved
or processing -> succeeded) in the transaction that also closes the order, gives back the
goods never picked up, and returns the order's coupon."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.clock import Clock

from ..auth import Principal
from ..errors import BadRequest, Conflict, NotFound
from ..metrics import MallMetrics
from ..payer_client import PayerClient, PayerUnavailable, RefundRefused
from ..schemas import RefundDecisionIn, RefundIn, RefundsQuery
from ..storage import Database, orders, payments, refunds
from ..storage.database import Connection
from . import audit_trail
from .orders import Orders

log = logging.getLogger("mall.after_sales")
REFUNDABLE = ("paid", "ready_for_pickup", "out_for_delivery", "completed")
# 七天无理由: goods handed over may be refunded within seven days (mall clock).
AFTER_PICKUP_DAYS = 7
REFUND_STATES = ("requested", "rejected", "approved", "processing", "succeeded")


def present(refund) -> dict:
    return {"refund_id": refund["id"], **{key: refund[key] for key in (
        "order_id", "amount_fen", "reason", "cause", "from_status", "status", "requested_at",
        "decided_at", "reject_reason", "settled_at")}}


@dataclass
class AfterSales:
    db: Database
    clock: Clock
    metrics: MallMetrics
    orders: Orders
    payer: PayerClient | None
    # Simulated seconds a sent refund may go unheard of before the payer is asked.
    query_after_seconds: float = 60.0

    async def request(self, principal: Principal, order_id: int, data: RefundIn) -> dict:
        conn = self.db.reader()
        order = await orders.order(conn, order_id)
        if order is None or order["user_id"] != principal.user_id:
            raise NotFound("order", "order_id")
        if order["status"] not in REFUNDABLE:
            raise Conflict("not_refundable", f"an order that is {order['status']} cannot be "
                           "refunded", "order_id")
        now = self.clock.now()
        if order["status"] == "completed" and (
                datetime.fromisoformat(order["closed_at"])
                + timedelta(days=AFTER_PICKUP_DAYS) < now):
            raise Conflict("refund_window_passed", f"goods handed over more than "
                           f"{AFTER_PICKUP_DAYS} days ago cannot be refunded here", "order_id")
        stamp = self.clock.stamp(now)

        async def ask(conn: Connection) -> int:
            if await refunds.for_order(conn, order_id) is not None:
                raise Conflict("refund_exists", "this order has a refund already", "order_id")
            payment = await payments.succeeded_for_order(conn, order_id)
            if payment is None or not await orders.move(conn, order_id, (order["status"],),
                                                        "refund_requested"):
                raise Conflict("not_refundable", "the order changed meanwhile; look again",
                               "order_id")
            return await refunds.insert(
                conn, order_id=order_id, payment_id=payment["id"],
                out_refund_no=_refund_number(order_id), amount_fen=order["total_fen"],
                reason=data.reason, cause="customer", from_status=order["status"],
                status="requested", now=stamp)

        await self.db.transaction(ask)
        self.metrics.refunds.labels("requested", data.reason).inc()
        return await self.mine(principal, order_id)

    async def mine(self, principal: Principal, order_id: int) -> dict:
        conn = self.db.reader()
        order = await orders.order(conn, order_id)
        refund = await refunds.for_order(conn, order_id)
        if order is None or order["user_id"] != principal.user_id or refund is None:
            raise NotFound("refund", "order_id")
        return present(refund)

    async def for_store(self, store_id: int, query: RefundsQuery) -> dict:
        if query.status is not None and query.status not in REFUND_STATES:
            raise BadRequest("unknown_status", f"status must be one of "
                             f"{', '.join(REFUND_STATES)}", "status")
        rows = await refunds.for_store(self.db.reader(), store_id, query.status, query.limit)
        return {"items": [{"refund_id": row["id"], **dict(row)} for row in rows]}

    async def decide(self, principal: Principal, store_id: int, order_id: int,
                     data: RefundDecisionIn) -> dict:
        """The store approves (the payer is asked at once) or rejects a requested refund."""
        conn = self.db.reader()
        order = await orders.order(conn, order_id)
        refund = await refunds.for_order(conn, order_id)
        if order is None or order["store_id"] != store_id or refund is None:
            raise NotFound("refund", "order_id")
        approve = data.decision == "approve"
        if not approve and not data.reject_reason:
            raise BadRequest("missing_field", "a rejection needs a reject_reason",
                             "reject_reason")
        stamp = self.clock.stamp()

        async def decide(conn: Connection) -> None:
            if not await refunds.decide(conn, refund["id"], "approved" if approve else "rejected",
                                        principal.user_id, stamp,
                                        None if approve else data.reject_reason):
                raise Conflict("refund_decided", "this refund was decided already", "order_id")
            if not approve:   # goods still in the store: the order goes on where it was
                back = refund["from_status"] if order["closed_at"] is None else "refund_rejected"
                await orders.move(conn, order_id, ("refund_requested",), back)
            await audit_trail.record(conn, principal, stamp,
                                     f"refund.{'approve' if approve else 'reject'}",
                                     store_id=store_id, target_type="order", target_id=order_id,
                                     detail={"amount_fen": refund["amount_fen"],
                                             "reason": refund["reason"]})

        await self.db.transaction(decide)
        self.metrics.refunds.labels("approved" if approve else "rejected",
                                    refund["reason"]).inc()
        if approve:
            await self.send(await refunds.for_order(self.db.reader(), order_id))
        return present(await refunds.for_order(self.db.reader(), order_id))

    async def refund_failed_group_order(self, conn: Connection, order, stamp: str) -> bool:
        """Inside a transaction: a paid order of a group that failed is refunded by the mall
        itself, no store decision needed.  False when it has a refund already."""
        if await refunds.for_order(conn, order["id"]) is not None:
            return False
        payment = await payments.succeeded_for_order(conn, order["id"])
        if payment is None:
            return False
        await refunds.insert(conn, order_id=order["id"], payment_id=payment["id"],
                             out_refund_no=_refund_number(order["id"]),
                             amount_fen=order["total_fen"], reason="group_failed",
                             cause="group_failed", from_status=order["status"],
                             status="approved", now=stamp)
        return True

    async def send(self, refund) -> bool:
        """Ask the payer to pay an approved refund back; False when it could not be asked
        now (the sweeper asks again, with the same number: one refund, however often)."""
        if self.payer is None or refund["status"] != "approved":
            return False
        payment = await payments.by_id(self.db.reader(), refund["payment_id"])
        try:
            answer = await self.payer.refund(payment["out_trade_no"], refund["out_refund_no"],
                                             refund["amount_fen"], payment["amount_fen"],
                                             refund["reason"])
        except PayerUnavailable as exc:
            log.warning("refund %s not sent: %s", refund["out_refund_no"], exc)
            return False
        except RefundRefused as exc:
            log.error("the payer refused refund %s: %s", refund["out_refund_no"], exc)
            self.metrics.refunds.labels("refused_by_payer", refund["reason"]).inc()
            return False
        stamp = self.clock.stamp()
        if answer.get("status") == "SUCCESS":
            await self.settle(refund["out_refund_no"], str(answer["refund_id"]), "query")
        else:
            await self.db.transaction(lambda conn: refunds.mark_sent(
                conn, refund["id"], str(answer["refund_id"]), stamp))
        return True

    async def settle(self, out_refund_no: str, payer_refund_id: str | None, how: str,
                     notification_id: str | None = None, amount_fen: int | None = None) -> str:
        """Apply the payer's word that a refund succeeded (a notification or a query
        answer); returns the outcome: applied, duplicate."""
        stamp = self.clock.stamp()

        async def apply(conn: Connection) -> str:
            refund = await refunds.by_out_refund_no(conn, out_refund_no)
            if refund is None or amount_fen not in (None, refund["amount_fen"]):
                raise NotFound("refund", "out_refund_no")
            if notification_id is not None and not await refunds.record_notification(
                    conn, notification_id, out_refund_no, "SUCCESS", stamp):
                return "duplicate"
            outcome = "duplicate"
            if await refunds.settle(conn, refund["id"], payer_refund_id, stamp):
                await self.orders.refund_in(conn, refund["order_id"], stamp)
                outcome = "applied"
            if notification_id is not None:
                await refunds.set_notification_outcome(conn, notification_id, outcome)
            return outcome

        outcome = await self.db.transaction(apply)
        if outcome == "applied":
            refund = await refunds.by_out_refund_no(self.db.reader(), out_refund_no)
            self.metrics.refunds.labels("refunded", refund["reason"]).inc()
        self.metrics.refund_settlements.labels(how, outcome).inc()
        return outcome

    async def reconcile_due(self, batch: int = 50) -> int:
        """Send approved refunds the payer has not accepted, and ask about sent ones not
        heard of for a while; returns how many changed.  Stops at the first call the payer
        does not answer (the next sweep tries again)."""
        if self.payer is None:
            return 0
        changed = 0
        for refund in await refunds.to_send(self.db.reader(), batch):
            if not await self.send(refund):
                break
            changed += 1
        asked_before = self.clock.stamp(self.clock.now()
                                        - timedelta(seconds=self.query_after_seconds))
        try:
            for refund in await refunds.to_query(self.db.reader(), asked_before, batch):
                answer = await self.payer.refund_status(refund["out_refund_no"])
                if answer is not None and answer["status"] == "SUCCESS":
                    changed += await self.settle(refund["out_refund_no"],
                                                 str(answer["refund_id"]),
                                                 "query") == "applied"
                else:
                    await self._mark_queried(refund["id"])
        except PayerUnavailable as exc:
            log.warning("refund query stopped: %s", exc)
        return changed


    async def _mark_queried(self, refund_id: int) -> None:
        stamp = self.clock.stamp()
        await self.db.transaction(lambda conn: refunds.mark_queried(conn, refund_id, stamp))


def _refund_number(order_id: int) -> str:
    return f"RF{order_id:010d}{secrets.token_hex(3).upper()}"
