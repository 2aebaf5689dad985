"""Paying for orders: prepay requests, and payment notifications applied exactly once.

A notification is trusted only when its RSA signature verifies against the platform key
and its timestamp is fresh; it is applied under the write lock by conditional updates
(payment `created` -> `succeeded`, order `pending_payment` -> `paid`), so repeats and
reorderings change nothing after the first."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from ..auth import Principal
from ..clock import Clock
from ..errors import BadRequest, Conflict, NotFound, Unauthorized
from ..metrics import MallMetrics
from ..storage import Database, orders, payments
from ..wechatpay import NONCE, SERIAL, SIGNATURE, TIMESTAMP, PlatformVerifier, decrypt_resource
from .orders import Orders


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
    verifier: PlatformVerifier
    apiv3_key: bytes
    window_seconds: int

    async def prepay(self, principal: Principal, order_id: int) -> dict:
        order = await orders.order(self.db.reader(), order_id)
        if order is None or order["user_id"] != principal.user_id:
            raise NotFound("order", "order_id")
        if order["status"] == "pending_payment" and order["expires_at"] <= self.clock.stamp():
            await self.orders.close(order_id, "expired")
            raise Conflict("order_expired", "the order expired before payment", "order_id")
        if order["status"] != "pending_payment":
            raise Conflict("not_payable", f"the order is {order['status']}", "order_id")
        stamp = self.clock.stamp()

        async def open_payment(conn) -> str:
            payment = await payments.open_for_order(conn, order_id)
            if payment is not None:
                return payment["prepay_id"]
            prepay_id = f"wx{secrets.token_hex(14)}"
            out_trade_no = f"XC{order_id:010d}{secrets.token_hex(3).upper()}"
            await payments.insert(conn, order_id, prepay_id, out_trade_no, order["total_fen"],
                                  stamp)
            return prepay_id

        prepay_id = await self.db.transaction(open_payment)
        return {"prepay_id": prepay_id, "order_id": order_id, "amount_fen": order["total_fen"],
                "package": f"prepay_id={prepay_id}", "sign_type": "RSA",
                "expires_at": order["expires_at"]}

    def _authenticate(self, headers: Mapping[str, str], body: bytes) -> None:
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
        """Apply one notification; returns its outcome (applied, duplicate, ...)."""
        self._authenticate(headers, body)
        try:
            envelope = json.loads(body)
            notification_id = str(envelope["id"])
            transaction = decrypt_resource(self.apiv3_key, envelope["resource"])
            out_trade_no = str(transaction["out_trade_no"])
            trade_state = str(transaction["trade_state"])
            amount = int(transaction["amount"]["total"])
        except (ValueError, KeyError, TypeError) as exc:
            self.metrics.payment_notifications.labels("malformed").inc()
            raise BadRequest("bad_resource", "notification body or resource is malformed",
                             "resource") from exc
        stamp = self.clock.stamp()

        async def apply(conn) -> tuple[str, object]:
            payment = await payments.by_out_trade_no(conn, out_trade_no)
            if payment is None or payment["amount_fen"] != amount:
                self.metrics.payment_notifications.labels("unknown").inc()
                raise NotFound("payment", "out_trade_no")
            if not await payments.record_notification(conn, notification_id,
                                                      payment["prepay_id"], trade_state, stamp):
                return "duplicate", None
            outcome = await self._apply(conn, payment, trade_state,
                                        transaction.get("transaction_id"), stamp)
            await payments.set_notification_outcome(conn, notification_id, outcome)
            return outcome, await orders.order(conn, payment["order_id"])

        outcome, order = await self.db.transaction(apply)
        self.metrics.payment_notifications.labels(outcome).inc()
        if outcome == "applied":
            self.metrics.orders.labels("paid").inc()
            self.metrics.gmv_yuan.inc(order["total_fen"] / 100)
        return outcome

    async def _apply(self, conn, payment, trade_state: str, transaction_id: str | None,
                     stamp: str) -> str:
        if trade_state != "SUCCESS":
            settled = await payments.settle(conn, payment["prepay_id"], "failed", None, stamp)
            return "payment_failed" if settled else "duplicate"
        if not await payments.settle(conn, payment["prepay_id"], "succeeded", transaction_id,
                                     stamp):
            # Already settled by another notification, or closed with its order: a payment
            # that lands on a closed order needs a refund, which a later release handles.
            return "duplicate" if payment["status"] == "succeeded" else "late"
        order = await orders.order(conn, payment["order_id"])
        code = new_pickup_code() if order["fulfilment"] == "pickup" else None
        if await orders.move(conn, order["id"], ("pending_payment",), "paid", paid_at=stamp,
                             pickup_code=code):
            return "applied"
        return "late"
