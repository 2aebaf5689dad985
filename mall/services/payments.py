"""Paying for orders: prepay requests to the payer, payment notifications and order queries
(主动查单) applied exactly once, and closing at the payer what can no longer be paid.

A notification is trusted only when its RSA signature verifies against the platform key
and its timestamp is fresh.  A notification and a query answer are applied alike, under the
write lock by conditional updates (payment `created` -> `succeeded`, order `pending_payment`
-> `paid`), so repeats, reorderings and a query racing a notification change nothing after
the first."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from shared.clock import Clock
from shared.wechatpay import NONCE, SERIAL, SIGNATURE, TIMESTAMP, PlatformVerifier, decrypt_resource

from ..auth import Principal
from ..errors import ApiError, BadRequest, Conflict, NotFound, Unauthorized
from ..metrics import MallMetrics
from ..payer_client import PayerClient, PayerUnavailable
from ..storage import Database, group_buys, orders, payments
from .orders import Orders

log = logging.getLogger("mall.payments")


class RefundSettler(Protocol):
    async def settle(self, out_refund_no: str, payer_refund_id: str | None, how: str,
                     notification_id: str | None = None,
                     amount_fen: int | None = None) -> str: ...


def new_pickup_code() -> str:
    # Security randomness, deliberately outside the simulation seed: a code must not be
    # guessable from a replayed run.
    return f"{secrets.randbelow(10**6):06d}"


@dataclass
class Payments:
    db: Database
    clock: Clock
    metrics: MallMetrics
    orders: Orders
    verifier: PlatformVerifier | None
    apiv3_key: bytes
    window_seconds: int
    payer: PayerClient | None
    # Simulated seconds without a notification after which a payment is asked about.
    query_after_seconds: float = 60.0
    # Where refund notifications go (the payer sends them to the payment's address).
    refunds: RefundSettler | None = None

    async def prepay(self, principal: Principal, order_id: int, notify_url: str) -> dict:
        """A prepay_id for the mini-program's wx.requestPayment: the open one of this order,
        or a new one the payer makes.  The payer is called outside any transaction; what it
        answers is recorded only if the order is still payable and has no open payment by
        then (a concurrent request may have won: its prepay is kept, this one closed)."""
        order = await payments.for_prepay(self.db.reader(), order_id)
        if order is None or order["user_id"] != principal.user_id:
            raise NotFound("order", "order_id")
        self._payable(order)
        if order["expires_at"] <= self.clock.stamp():
            await self.orders.close(order_id, "expired")
            raise Conflict("order_expired", "the order expired before payment", "order_id")
        prepay_id = order["open_prepay_id"] or await self._open_payment(order, notify_url)
        return {"prepay_id": prepay_id, "order_id": order_id,
                "amount_fen": order["total_fen"], "package": f"prepay_id={prepay_id}",
                "sign_type": "RSA", "expires_at": order["expires_at"]}

    @staticmethod
    def _payable(order) -> None:
        if order["status"] != "pending_payment":
            raise Conflict("not_payable", f"the order is {order['status']}", "order_id")

    async def _open_payment(self, order, notify_url: str) -> str:
        """The prepay_id of a new payment of the order (`payments.for_prepay`'s row), or of
        the one a concurrent request recorded first."""
        out_trade_no = f"XC{order['id']:010d}{secrets.token_hex(3).upper()}"
        if self.payer is None:
            raise ApiError("payer_unavailable", "this mall has no payer configured",
                           status=503)
        try:
            prepay_id = await self.payer.jsapi(out_trade_no, order["total_fen"], order["openid"],
                                               f"星城订单 {order['id']}", notify_url)
        except PayerUnavailable as exc:
            log.warning("prepay for order %s failed: %s", order["id"], exc)
            raise ApiError("payer_unavailable", "the payer did not answer; try again",
                           status=503) from exc
        stamp = self.clock.stamp()

        async def record(conn):
            await conn.lock("order", order["id"])   # one open payment per order
            current = await payments.for_prepay(conn, order["id"])
            self._payable(current)
            if current["open_prepay_id"] is not None:
                return current["open_prepay_id"], False
            await payments.insert(conn, order["id"], prepay_id, out_trade_no,
                                  order["total_fen"], stamp)
            return prepay_id, True

        try:
            recorded_id, recorded = await self.db.transaction(record)
        except ApiError:
            await self._close_quietly(out_trade_no)
            raise
        if not recorded:
            await self._close_quietly(out_trade_no)
        return recorded_id

    async def _close_quietly(self, out_trade_no: str) -> None:
        """Close a prepay the mall did not record; if the payer cannot be reached it stays
        unpaid at the payer, and no customer ever saw its prepay_id."""
        assert self.payer is not None
        try:
            await self.payer.close(out_trade_no)
        except PayerUnavailable as exc:
            log.warning("could not close unrecorded prepay %s: %s", out_trade_no, exc)

    def _authenticate(self, headers: Mapping[str, str], body: bytes) -> None:
        if self.verifier is None:
            raise Unauthorized("no_payer", "this mall has no payer configured")
        for name in (SIGNATURE, TIMESTAMP, NONCE, SERIAL):
            if not headers.get(name):
                self.metrics.payment_notifications.labels("rejected").inc()
                raise Unauthorized("missing_signature", f"header {name} is required", name)
        try:
            age = abs(self.clock.wall() - int(headers[TIMESTAMP]))
        except ValueError:
            age = float("inf")
        if age > self.window_seconds:
            self.metrics.payment_notifications.labels("stale").inc()
            raise Unauthorized("stale_notification", "timestamp is outside the accepted "
                               f"window of {self.window_seconds}s", TIMESTAMP)
        if not self.verifier.verify(headers[SERIAL], headers[TIMESTAMP], headers[NONCE], body,
                                    headers[SIGNATURE]):
            self.metrics.payment_notifications.labels("rejected").inc()
            raise Unauthorized("bad_signature", "signature does not verify", SIGNATURE)

    async def notify(self, headers: Mapping[str, str], body: bytes) -> str:
        """Apply one notification, of a payment or of a refund (the payer sends both here);
        returns its outcome (applied, duplicate, ...)."""
        self._authenticate(headers, body)
        with self._reading():
            envelope = json.loads(body)
            notification_id = str(envelope["id"])
            refund = str(envelope.get("event_type", "")).startswith("REFUND.")
            resource = envelope["resource"]
        if refund and self.refunds:
            return await self._refund_notification(notification_id, resource)
        with self._reading():
            transaction = decrypt_resource(self.apiv3_key, resource)
            out_trade_no = str(transaction["out_trade_no"])
            trade_state = str(transaction["trade_state"])
            amount = int(transaction["amount"]["total"])
        stamp = self.clock.stamp()

        async def apply(conn) -> tuple[str, object]:
            payment = await payments.by_out_trade_no(conn, out_trade_no)
            if payment is None or payment["amount_fen"] != amount:
                self.metrics.payment_notifications.labels("unknown").inc()
                raise NotFound("payment", "out_trade_no")
            if not await payments.record_notification(conn, notification_id,
                                                      payment["prepay_id"], trade_state, stamp):
                return "duplicate", None
            outcome, order = await self._apply(conn, payment, trade_state,
                                               transaction.get("transaction_id"), stamp)
            await payments.set_notification_outcome(conn, notification_id, outcome)
            return outcome, order

        outcome, order = await self.db.transaction(apply)
        self.metrics.payment_notifications.labels(outcome).inc()
        self._count_paid(outcome, order)
        return outcome

    async def _refund_notification(self, notification_id: str, resource: dict) -> str:
        assert self.refunds is not None
        with self._reading():
            refund = decrypt_resource(self.apiv3_key, resource)
            out_refund_no = str(refund["out_refund_no"])
            status = str(refund["refund_status"])
            amount = int(refund["amount"]["refund"])
        if status != "SUCCESS":   # REFUND.ABNORMAL / CLOSED: the money did not go back
            log.error("refund %s came back %s", out_refund_no, status)
            self.metrics.refund_settlements.labels("notification", status.lower()).inc()
            return status.lower()
        return await self.refunds.settle(out_refund_no, refund.get("refund_id"),
                                         "notification", notification_id, amount)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """A notification's body or resource read inside: malformed is a 400, counted."""
        try:
            yield
        except (ValueError, KeyError, TypeError) as exc:
            self.metrics.payment_notifications.labels("malformed").inc()
            raise BadRequest("bad_resource", "notification body or resource is malformed",
                             "resource") from exc

    def _count_paid(self, outcome: str, order) -> None:
        if outcome == "applied":
            self.metrics.orders.labels("paid").inc()
            self.metrics.gmv_yuan.inc(order["total_fen"] / 100)

    async def reconcile_due(self, batch: int = 50) -> int:
        """主动查单: ask the payer about open payments it has not notified for a while and
        settle what it answers, exactly once; then close at the payer the payments of orders
        that can no longer be paid.  Returns how many payments changed here.  Stops at the
        first call the payer does not answer (the next sweep tries again)."""
        if self.payer is None:
            return 0
        now = self.clock.now()
        asked_before = self.clock.stamp(now - timedelta(seconds=self.query_after_seconds))
        changed = 0
        try:
            for payment in await payments.unsettled(self.db.reader(), asked_before, batch):
                changed += await self._settle_from_query(payment)
            for payment in await payments.to_close_at_payer(self.db.reader(), batch):
                await self._close_at_payer(payment)
        except PayerUnavailable as exc:
            log.warning("order query stopped: %s", exc)
        return changed

    async def _settle_from_query(self, payment) -> int:
        assert self.payer is not None
        answer = await self.payer.query(payment["out_trade_no"])
        state = answer["trade_state"] if answer is not None else "NOTPAY"
        stamp = self.clock.stamp()
        if state == "NOTPAY" or (answer is not None and
                                 int(answer["amount"]["total"]) != payment["amount_fen"]):
            await self.db.transaction(
                lambda conn: payments.mark_queried(conn, payment["prepay_id"], stamp))
            return 0

        async def apply(conn):
            if state == "CLOSED":
                settled = await payments.settle(conn, payment["prepay_id"], "closed", None, stamp)
                return ("closed" if settled else "duplicate"), None
            fresh = await payments.by_prepay(conn, payment["prepay_id"])
            return await self._apply(conn, fresh, state, answer.get("transaction_id"), stamp)

        outcome, order = await self.db.transaction(apply)
        self.metrics.payment_queries.labels(outcome).inc()
        self._count_paid(outcome, order)
        return int(outcome != "duplicate")

    async def _close_at_payer(self, payment) -> None:
        assert self.payer is not None
        result = await self.payer.close(payment["out_trade_no"])
        if result == "paid":
            # The customer paid just as the order closed: the money needs a refund, which
            # the after-sales release handles; until then it is counted and logged.
            log.error("payment %s was paid at the payer after its order closed",
                      payment["out_trade_no"])
            self.metrics.payment_queries.labels("paid_after_close").inc()
        stamp = self.clock.stamp()
        await self.db.transaction(
            lambda conn: payments.mark_closed_at_payer(conn, payment["prepay_id"], stamp))

    async def _apply(self, conn, payment, trade_state: str, transaction_id: str | None,
                     stamp: str) -> tuple[str, object]:
        """(outcome, the order as paid when the outcome is 'applied', else None)."""
        if trade_state != "SUCCESS":
            settled = await payments.settle(conn, payment["prepay_id"], "failed", None, stamp)
            return ("payment_failed" if settled else "duplicate"), None
        if not await payments.settle(conn, payment["prepay_id"], "succeeded", transaction_id,
                                     stamp):
            # Already settled by another notification, or closed with its order: a payment
            # that lands on a closed order needs a refund, which a later release handles.
            return ("duplicate" if payment["status"] == "succeeded" else "late"), None
        order = await orders.mark_paid(conn, payment["order_id"], stamp, new_pickup_code())
        if order is None:
            return "late", None
        await self.orders.membership.earn(conn, order, stamp)
        if order["group_id"] is not None and await group_buys.complete_if_full(
                conn, order["group_id"], stamp):
            self.metrics.groups.labels("succeeded").inc()
        return "applied", order
