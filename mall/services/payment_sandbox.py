"""The sandbox payer: plays WeChat Pay's side for staging.

Completing a prepay makes it send the mall a notification over real HTTP, signed and
encrypted as WeChat Pay v3 does, and retried on WeChat's own schedule (read on the mall
clock, so a fast simulation retries fast) until the mall acknowledges it."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import uuid
from dataclasses import dataclass, field

import aiohttp

from ..auth import Principal
from ..clock import Clock
from ..errors import Conflict, NotFound
from ..schemas import PaymentCompletion
from ..storage import Database, orders, payments
from ..wechatpay import NONCE, SERIAL, SIGNATURE, TIMESTAMP, PlatformSigner, encrypt_resource

log = logging.getLogger("mall.payment_sandbox")

# Seconds between WeChat Pay's notification retries (about 24 hours in all).
RETRY_SCHEDULE = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800,
                  21600, 21600)


@dataclass
class SandboxPayer:
    db: Database
    clock: Clock
    signer: PlatformSigner
    apiv3_key: bytes
    notify_url: str | None
    _session: aiohttp.ClientSession | None = None
    _deliveries: set[asyncio.Task] = field(default_factory=set)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))

    async def stop(self) -> None:
        for task in list(self._deliveries):
            task.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def signed(self, body: bytes) -> dict[str, str]:
        timestamp, nonce = str(int(self.clock.wall())), secrets.token_hex(16)
        return {SIGNATURE: self.signer.sign(timestamp, nonce, body), TIMESTAMP: timestamp,
                NONCE: nonce, SERIAL: self.signer.serial, "Content-Type": "application/json"}

    async def complete(self, principal: Principal, prepay_id: str, data: PaymentCompletion,
                       origin: str) -> dict:
        conn = self.db.reader()
        payment = await payments.by_prepay(conn, prepay_id)
        order = payment and await orders.order(conn, payment["order_id"])
        if order is None or order["user_id"] != principal.user_id:
            raise NotFound("prepay", "prepay_id")
        if payment["status"] != "created":
            raise Conflict("prepay_not_open", f"this prepay is {payment['status']}",
                           "prepay_id")
        success = data.result == "success"
        now = self.clock.now()
        transaction = {
            "out_trade_no": payment["out_trade_no"],
            "transaction_id": f"42000{secrets.randbelow(10**23):023d}" if success else None,
            "trade_state": "SUCCESS" if success else "PAYERROR",
            "trade_state_desc": "支付成功" if success else "支付失败",
            "amount": {"total": payment["amount_fen"], "currency": "CNY"},
            "payer": {"openid": f"user-{principal.user_id}"},
            "success_time": now.isoformat(timespec="seconds") if success else None,
        }
        notification_id = str(uuid.uuid4())
        body = json.dumps({
            "id": notification_id, "create_time": now.isoformat(timespec="seconds"),
            "event_type": "TRANSACTION.SUCCESS" if success else "TRANSACTION.FAIL",
            "resource_type": "encrypt-resource",
            "summary": "支付成功" if success else "支付失败",
            "resource": encrypt_resource(self.apiv3_key, transaction, secrets.token_hex(6),
                                         "transaction"),
        }, ensure_ascii=False).encode()
        url = self.notify_url or f"{origin}/api/v1/payments/notify"
        task = asyncio.create_task(self._deliver(url, body, data.delay_ms / 1000))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)
        # The sandbox shows what it sends, so a client can replay it as WeChat would.
        return {"notification_id": notification_id, "delay_ms": data.delay_ms,
                "notification": {"url": url, "headers": self.signed(body),
                                 "body": body.decode()}}

    async def _deliver(self, url: str, body: bytes, delay: float) -> None:
        await asyncio.sleep(delay)
        assert self._session is not None
        for wait in (0, *RETRY_SCHEDULE):
            await self.clock.sleep(wait)
            try:
                async with self._session.post(url, data=body, headers=self.signed(body)) as resp:
                    if resp.status < 300:
                        return
                    log.warning("notification to %s answered %s; will retry", url, resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("notification to %s failed (%s); will retry", url, exc)
        log.error("notification to %s gave up after %d tries", url, len(RETRY_SCHEDULE) + 1)
