"""The mall's client of the payer (WeChat Pay, or the sandbox standing in for it): the JSAPI
order that makes a prepay, the order query (主动查单), the close, and refunds with their query,
each request signed with the merchant's key.  The payer is another process: every call may
fail, and says so with `PayerUnavailable` rather than an answer the mall could mistake for a
decision."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import quote

import aiohttp

from shared.clock import Clock
from shared.wechatpay import MerchantSigner

TIMEOUT_S = 5.0


class PayerUnavailable(Exception):
    """The payer did not answer, or answered with something other than a decision."""


class RefundRefused(Exception):
    """The payer answered that it will not make this refund (a decision, not an outage)."""


@dataclass
class PayerClient:
    base_url: str
    signer: MerchantSigner
    appid: str
    clock: Clock
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
            connector=aiohttp.TCPConnector(limit=100))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(self, method: str, path: str, payload: dict | None = None
                    ) -> tuple[int, dict]:
        assert self._session is not None, "the payer client is not started"
        body = json.dumps(payload, ensure_ascii=False).encode() if payload is not None else b""
        headers = {"Authorization": self.signer.authorization(method, path, body,
                                                              int(self.clock.wall())),
                   "Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(method, self.base_url + path, data=body,
                                             headers=headers) as resp:
                text = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise PayerUnavailable(f"{method} {path}: {type(exc).__name__}") from exc
        if status >= 500 or status in (401, 429):
            raise PayerUnavailable(f"{method} {path}: answered {status}")
        try:
            return status, (json.loads(text) if text else {})
        except ValueError as exc:
            raise PayerUnavailable(f"{method} {path}: answered no JSON") from exc

    async def jsapi(self, out_trade_no: str, amount_fen: int, openid: str, description: str,
                    notify_url: str) -> str:
        """A prepay_id for this payment (the same one again for the same out_trade_no)."""
        status, answer = await self._call("POST", "/v3/pay/transactions/jsapi", {
            "appid": self.appid, "mchid": self.signer.mchid, "description": description,
            "out_trade_no": out_trade_no, "notify_url": notify_url,
            "amount": {"total": amount_fen, "currency": "CNY"}, "payer": {"openid": openid}})
        if status != 200 or "prepay_id" not in answer:
            raise PayerUnavailable(f"jsapi refused {out_trade_no}: {status} {answer}")
        return str(answer["prepay_id"])

    async def query(self, out_trade_no: str) -> dict | None:
        """The payer's view of a payment, None when it never heard of it."""
        status, answer = await self._call(
            "GET", f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no)}"
                   f"?mchid={self.signer.mchid}")
        if status == 404:
            return None
        if status != 200 or "trade_state" not in answer:
            raise PayerUnavailable(f"query {out_trade_no}: {status} {answer}")
        return answer

    async def close(self, out_trade_no: str) -> str:
        """Close an unpaid payment: "closed", "paid" (too late: the customer paid) or
        "unknown" (the payer never heard of it, so nothing can be paid)."""
        status, answer = await self._call(
            "POST", f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no)}/close",
            {"mchid": self.signer.mchid})
        if status == 204:
            return "closed"
        if status == 404:
            return "unknown"
        if answer.get("code") == "ORDERPAID":
            return "paid"
        raise PayerUnavailable(f"close {out_trade_no}: {status} {answer}")

    async def refund(self, out_trade_no: str, out_refund_no: str, refund_fen: int,
                     total_fen: int, reason: str) -> dict:
        """Ask for a refund (the same out_refund_no again is the same refund): the payer's
        answer, status PROCESSING or SUCCESS.  Its notification goes where the payment's did
        (no notify_url: the payer's fallback), so one endpoint hears both.  A refusal (it
        will not refund this) raises `RefundRefused`; no answer raises `PayerUnavailable`."""
        status, answer = await self._call("POST", "/v3/refund/domestic/refunds", {
            "out_trade_no": out_trade_no, "out_refund_no": out_refund_no,
            "reason": reason[:80],
            "amount": {"refund": refund_fen, "total": total_fen, "currency": "CNY"}})
        if status == 200 and "refund_id" in answer:
            return answer
        raise RefundRefused(f"refund {out_refund_no}: {status} {answer}")

    async def refund_status(self, out_refund_no: str) -> dict | None:
        """The payer's view of a refund, None when it never heard of it."""
        status, answer = await self._call(
            "GET", f"/v3/refund/domestic/refunds/{quote(out_refund_no)}")
        if status == 404:
            return None
        if status != 200 or "status" not in answer:
            raise PayerUnavailable(f"refund query {out_refund_no}: {status} {answer}")
        return answer
