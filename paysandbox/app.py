"""The sandbox's app factory and its handlers: the WeChat Pay v3 JSAPI order, order query and
close, refunds and their query (merchant-signed), the customer's wallet completing a prepay,
and ops endpoints.

Errors answer as WeChat Pay does, `{"code": "PARAM_ERROR", "message": ...}` with the HTTP
status of its documentation, plus the offending `field` where there is one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.clock import Clock
from shared.wechatpay import Keyring, MerchantVerifier, PlatformSigner, encrypt_resource

from . import storage
from .outbox import Outbox, OutboxMetrics
from .storage import Store

log = logging.getLogger("paysandbox")
# A signed request's timestamp may be this far from the payer's clock (WeChat: 5 minutes).
REQUEST_WINDOW_S = 300


@dataclass
class PayerConfig:
    db_path: Path = Path("paysandbox.db")
    keys_path: Path = Path("payment-keys.json")
    clock: Clock = field(default_factory=Clock)
    # A simulated clock takes over the anchor stored with the database (False: --since given).
    resume_clock: bool = True


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


NotifyUrl = Annotated[str, Field(pattern=r"^https?://[^\s]{1,250}$")]
OutTradeNo = Annotated[str, Field(pattern=r"^[A-Za-z0-9_*|-]{6,32}$")]


class Amount(_Strict):
    total: Annotated[int, Field(gt=0, le=10**10)]
    currency: Literal["CNY"] = "CNY"


class Payer(_Strict):
    openid: Annotated[str, Field(min_length=1, max_length=128)]


class JsapiOrder(_Strict):
    appid: Annotated[str, Field(min_length=1, max_length=32)]
    mchid: Annotated[str, Field(min_length=1, max_length=32)]
    description: Annotated[str, Field(min_length=1, max_length=127)]
    out_trade_no: OutTradeNo
    notify_url: NotifyUrl
    amount: Amount
    payer: Payer


class RefundAmount(_Strict):
    refund: Annotated[int, Field(gt=0, le=10**10)]
    total: Annotated[int, Field(gt=0, le=10**10)]
    currency: Literal["CNY"] = "CNY"


class RefundRequest(_Strict):
    out_trade_no: OutTradeNo
    out_refund_no: Annotated[str, Field(pattern=r"^[A-Za-z0-9_*@|-]{1,64}$")]
    reason: Annotated[str, Field(max_length=80)] | None = None
    # Optional, as at WeChat Pay: without it the notification goes where the payment's went
    # (WeChat: to the URL configured on the merchant platform).
    notify_url: NotifyUrl | None = None
    amount: RefundAmount


class Completion(_Strict):
    """What the customer's wallet does with a prepay: pay it, or fail (no money)."""

    result: Literal["success", "fail"] = "success"
    delay_ms: Annotated[int, Field(ge=0, le=60_000)] = 0


class Refusal(Exception):
    """An error answered in WeChat Pay's shape."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


@dataclass
class Sandbox:
    config: PayerConfig
    keys: Keyring
    store: Store
    registry: CollectorRegistry
    signer: PlatformSigner = field(init=False)
    verifier: MerchantVerifier = field(init=False)
    outbox: Outbox = field(init=False)
    transactions: Counter = field(init=False)

    def __post_init__(self) -> None:   # RSA keys parse once, not per request
        self.signer = self.keys.platform_signer()
        self.verifier = self.keys.merchant_verifier()
        self.outbox = Outbox(self.store, self.signer, self.config.clock,
                             OutboxMetrics(self.registry))
        self.transactions = Counter("paysandbox_transactions",
                                    "Transactions by what happened to them", ["event"],
                                    registry=self.registry)


SANDBOX = web.AppKey("sandbox", Sandbox)


def _parse(model: type[BaseModel], body: bytes) -> BaseModel:
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise Refusal(400, "PARAM_ERROR", f"{where}: {first['msg']}", where) from exc


def _view(row) -> dict:
    """A transaction as WeChat Pay's order query answers it."""
    paid = row["trade_state"] == "SUCCESS"
    return {"appid": row["appid"], "mchid": row["mchid"], "out_trade_no": row["out_trade_no"],
            "transaction_id": row["transaction_id"], "trade_type": "JSAPI",
            "trade_state": row["trade_state"],
            "trade_state_desc": {"NOTPAY": "未支付", "SUCCESS": "支付成功",
                                 "PAYERROR": "支付失败", "CLOSED": "已关闭"}[row["trade_state"]],
            "success_time": row["success_time"], "payer": {"openid": row["openid"]},
            "amount": {"total": row["amount_fen"], "payer_total": row["amount_fen"] if paid
                       else 0, "currency": "CNY"}}


async def jsapi(request: web.Request) -> web.Response:
    """POST /v3/pay/transactions/jsapi: a prepay for a mini-program payment.  The same
    out_trade_no with the same order answers the same prepay_id (a merchant's retry)."""
    box = request.app[SANDBOX]
    order = _parse(JsapiOrder, await request.read())
    assert isinstance(order, JsapiOrder)
    if order.mchid != box.keys.mchid or order.appid != box.keys.appid:
        raise Refusal(400, "INVALID_REQUEST", "appid and mchid do not match", "mchid")
    prepay_id = f"wx{secrets.token_hex(14)}"
    now = box.config.clock.stamp()

    async def create(conn) -> str:
        existing = await box.store.by_out_trade_no(order.out_trade_no)
        if existing is None:
            await storage.insert_transaction(
                conn, out_trade_no=order.out_trade_no, prepay_id=prepay_id, mchid=order.mchid,
                appid=order.appid, description=order.description, amount_fen=order.amount.total,
                openid=order.payer.openid, notify_url=order.notify_url, now=now)
            return prepay_id
        if existing["trade_state"] == "SUCCESS":
            raise Refusal(400, "ORDERPAID", "this out_trade_no is paid", "out_trade_no")
        if existing["trade_state"] == "CLOSED":
            raise Refusal(400, "ORDER_CLOSED", "this out_trade_no is closed", "out_trade_no")
        if (existing["amount_fen"], existing["openid"]) != (order.amount.total,
                                                             order.payer.openid):
            raise Refusal(400, "INVALID_REQUEST", "out_trade_no was used with another amount "
                          "or payer", "out_trade_no")
        return existing["prepay_id"]

    found = await box.store.write(create)
    if found == prepay_id:
        box.transactions.labels("created").inc()
    return web.json_response({"prepay_id": found})


async def query(request: web.Request) -> web.Response:
    """GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=: 主动查单."""
    box = request.app[SANDBOX]
    if request.query.get("mchid") != box.keys.mchid:
        raise Refusal(400, "PARAM_ERROR", "mchid is missing or not this merchant's", "mchid")
    row = await box.store.by_out_trade_no(request.match_info["out_trade_no"])
    if row is None:
        raise Refusal(404, "ORDER_NOT_EXIST", "no such out_trade_no", "out_trade_no")
    return web.json_response(_view(row))


async def close(request: web.Request) -> web.Response:
    """POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close: an unpaid order can no
    longer be paid.  Closing a closed one is a no-op; a paid one answers ORDERPAID."""
    box = request.app[SANDBOX]
    out_trade_no = request.match_info["out_trade_no"]
    body = await request.read()
    try:
        mchid = json.loads(body or b"{}").get("mchid")
    except (ValueError, AttributeError):
        mchid = None
    if mchid != box.keys.mchid:
        raise Refusal(400, "PARAM_ERROR", "mchid is missing or not this merchant's", "mchid")
    now = box.config.clock.stamp()

    async def close_it(conn) -> None:
        row = await box.store.by_out_trade_no(out_trade_no)
        if row is None:
            raise Refusal(404, "ORDER_NOT_EXIST", "no such out_trade_no", "out_trade_no")
        if row["trade_state"] == "SUCCESS":
            raise Refusal(400, "ORDERPAID", "this out_trade_no is paid", "out_trade_no")
        if await storage.settle(conn, out_trade_no, "CLOSED", None, None, now):
            box.transactions.labels("closed").inc()

    await box.store.write(close_it)
    return web.Response(status=204)


async def complete(request: web.Request) -> web.Response:
    """POST /sandbox/payments/{prepay_id}/complete: the customer's wallet pays (or fails).
    The payment and the notification it owes are written in one transaction; the answer
    shows the notification, so a test can replay it as WeChat Pay would."""
    box = request.app[SANDBOX]
    data = _parse(Completion, await request.read())
    assert isinstance(data, Completion)
    row = await box.store.by_prepay(request.match_info["prepay_id"])
    if row is None:
        raise Refusal(404, "ORDER_NOT_EXIST", "no such prepay_id", "prepay_id")
    success = data.result == "success"
    clock = box.config.clock
    now = clock.now()
    transaction_id = f"42000{secrets.randbelow(10**23):023d}" if success else None
    success_time = now.isoformat(timespec="seconds") if success else None
    state = "SUCCESS" if success else "PAYERROR"
    resource = {**_view(row), "transaction_id": transaction_id, "trade_state": state,
                "trade_state_desc": "支付成功" if success else "支付失败",
                "success_time": success_time,
                "amount": {"total": row["amount_fen"],
                           "payer_total": row["amount_fen"] if success else 0,
                           "currency": "CNY"}}
    notification_id = str(uuid.uuid4())
    body = json.dumps({
        "id": notification_id, "create_time": now.isoformat(timespec="seconds"),
        "event_type": "TRANSACTION.SUCCESS" if success else "TRANSACTION.FAIL",
        "resource_type": "encrypt-resource", "summary": "支付成功" if success else "支付失败",
        "resource": encrypt_resource(box.keys.apiv3_key.encode(), resource,
                                     secrets.token_hex(6), "transaction"),
    }, ensure_ascii=False).encode()

    async def pay(conn) -> None:
        if not await storage.settle(conn, row["out_trade_no"], state, transaction_id,
                                    success_time, clock.stamp(now)):
            current = await box.store.by_out_trade_no(row["out_trade_no"])
            raise Refusal(409, "ORDER_NOT_PAYABLE",
                          f"this prepay is {current['trade_state'] if current else 'gone'}",
                          "prepay_id")
        await storage.enqueue(conn, notification_id, row["out_trade_no"], row["notify_url"],
                              body, time.time() + data.delay_ms / 1000)

    await box.store.write(pay)
    box.transactions.labels("paid" if success else "failed").inc()
    if data.delay_ms == 0:
        box.outbox.wake.set()
    headers = box.signer.headers(body, int(clock.wall()))
    return web.json_response({"notification_id": notification_id, "delay_ms": data.delay_ms,
                              "notification": {"url": row["notify_url"], "headers": headers,
                                               "body": body.decode()}}, status=202)


def _refund_view(row, status: str | None = None) -> dict:
    """A refund as WeChat Pay's refund API answers it."""
    return {"refund_id": row["refund_id"], "out_refund_no": row["out_refund_no"],
            "transaction_id": row["transaction_id"], "out_trade_no": row["out_trade_no"],
            "channel": "ORIGINAL", "user_received_account": "支付用户零钱",
            "status": status or row["status"], "success_time": row["success_time"],
            "create_time": row["created_at"],
            "amount": {"total": row["total_fen"], "refund": row["amount_fen"],
                       "payer_total": row["total_fen"], "payer_refund": row["amount_fen"],
                       "currency": "CNY"}}


async def refund(request: web.Request) -> web.Response:
    """POST /v3/refund/domestic/refunds: give back part or all of a successful payment.  The
    same out_refund_no again answers the same refund (a merchant's retry) and moves no money
    twice.  A new refund answers PROCESSING, as WeChat Pay does; the REFUND.SUCCESS
    notification follows through the outbox."""
    box = request.app[SANDBOX]
    data = _parse(RefundRequest, await request.read())
    assert isinstance(data, RefundRequest)
    clock = box.config.clock
    now = clock.now()
    refund_id = f"50300{secrets.randbelow(10**24):024d}"
    notification_id = str(uuid.uuid4())

    async def create(conn) -> tuple[object, bool]:
        existing = await box.store.refund(data.out_refund_no)
        if existing is not None:
            if (existing["out_trade_no"], existing["amount_fen"]) != (data.out_trade_no,
                                                                      data.amount.refund):
                raise Refusal(400, "INVALID_REQUEST", "out_refund_no was used for another "
                              "refund", "out_refund_no")
            return existing, False
        trade = await box.store.by_out_trade_no(data.out_trade_no)
        if trade is None:
            raise Refusal(404, "RESOURCE_NOT_EXISTS", "no such out_trade_no", "out_trade_no")
        if trade["trade_state"] != "SUCCESS":
            raise Refusal(400, "INVALID_REQUEST", f"the payment is {trade['trade_state']}, "
                          "not paid", "out_trade_no")
        if data.amount.total != trade["amount_fen"]:
            raise Refusal(400, "PARAM_ERROR", "amount.total is not the payment's",
                          "amount.total")
        left = trade["amount_fen"] - await box.store.refunded_fen(data.out_trade_no)
        if data.amount.refund > left:
            raise Refusal(400, "INVALID_REQUEST", f"only {left} fen are left to refund",
                          "amount.refund")
        success_time = now.isoformat(timespec="seconds")
        notify_url = data.notify_url or trade["notify_url"]
        await storage.insert_refund(
            conn, out_refund_no=data.out_refund_no, refund_id=refund_id,
            out_trade_no=data.out_trade_no, amount_fen=data.amount.refund, reason=data.reason,
            notify_url=notify_url, success_time=success_time, now=clock.stamp(now))
        made = await box.store.refund(data.out_refund_no)
        resource = {**_refund_view(made), "mchid": trade["mchid"], "refund_status": "SUCCESS"}
        body = json.dumps({
            "id": notification_id, "create_time": success_time, "event_type": "REFUND.SUCCESS",
            "resource_type": "encrypt-resource", "summary": "退款成功",
            "resource": encrypt_resource(box.keys.apiv3_key.encode(), resource,
                                         secrets.token_hex(6), "refund", "refund"),
        }, ensure_ascii=False).encode()
        await storage.enqueue(conn, notification_id, data.out_trade_no, notify_url, body,
                              time.time())
        return made, True

    row, created = await box.store.write(create)
    if created:
        box.transactions.labels("refunded").inc()
        box.outbox.wake.set()
    return web.json_response(_refund_view(row, "PROCESSING" if created else None))


async def refund_query(request: web.Request) -> web.Response:
    """GET /v3/refund/domestic/refunds/{out_refund_no}: 查询单笔退款."""
    box = request.app[SANDBOX]
    row = await box.store.refund(request.match_info["out_refund_no"])
    if row is None:
        raise Refusal(404, "RESOURCE_NOT_EXISTS", "no such out_refund_no", "out_refund_no")
    return web.json_response(_refund_view(row))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    box = request.app[SANDBOX]
    return web.json_response({"status": "ready", "clock": box.config.clock.describe(),
                              "mchid": box.keys.mchid,
                              "outbox_pending": await box.store.pending_count()})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[SANDBOX].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def merchant_auth(request: web.Request, handler) -> web.StreamResponse:
    """Every /v3/ request carries the merchant's signature, as WeChat Pay requires."""
    if request.path.startswith("/v3/"):
        box = request.app[SANDBOX]
        why = box.verifier.refusal(
            request.headers.get("Authorization", ""), request.method, request.path_qs,
            await request.read(), box.config.clock.wall(), REQUEST_WINDOW_S)
        if why is not None:
            raise Refusal(401, "SIGN_ERROR", why, "Authorization")
    return await handler(request)


@web.middleware
async def refusals(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Refusal as exc:
        return web.json_response({"code": exc.code, "message": exc.message,
                                  **({"field": exc.field} if exc.field else {})},
                                 status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response({"code": "NOT_FOUND" if exc.status == 404 else "INVALID_REQUEST",
                                  "message": exc.reason}, status=exc.status)
    except Exception:  # never a traceback to a client
        log.exception("unexpected error on %s %s", request.method, request.path)
        return web.json_response({"code": "SYSTEM_ERROR", "message": "system error"},
                                 status=500)


async def _resources(app: web.Application) -> AsyncIterator[None]:
    box = app[SANDBOX]
    await box.store.open()
    clock = box.config.clock
    if clock.simulated:
        anchor = clock.settle(await box.store.setting("clock_anchor"), box.config.resume_clock,
                              log)
        if anchor is not None:
            await box.store.write(lambda conn: storage.put_setting(conn, "clock_anchor",
                                                                   anchor))
    deliverer = asyncio.create_task(box.outbox.run())
    log.info("payment sandbox ready on %s (clock %s, anchor %s), %d notifications owed",
             box.store.path, box.config.clock.describe(), box.config.clock.anchor(),
             await box.store.pending_count())
    yield
    deliverer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await deliverer
    await box.store.close()


def create_app(config: PayerConfig) -> web.Application:
    keys = Keyring.load_or_create(config.keys_path)
    app = web.Application(middlewares=[refusals, merchant_auth], client_max_size=64 * 1024)
    app[SANDBOX] = Sandbox(config, keys, Store(config.db_path), CollectorRegistry())
    app.router.add_post("/v3/pay/transactions/jsapi", jsapi)
    app.router.add_get("/v3/pay/transactions/out-trade-no/{out_trade_no}", query)
    app.router.add_post("/v3/pay/transactions/out-trade-no/{out_trade_no}/close", close)
    app.router.add_post("/v3/refund/domestic/refunds", refund)
    app.router.add_get("/v3/refund/domestic/refunds/{out_refund_no}", refund_query)
    app.router.add_post("/sandbox/payments/{prepay_id}/complete", complete)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.cleanup_ctx.append(_resources)
    return app
