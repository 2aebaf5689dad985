"""The payment notification endpoint (called by the payer, not by customers) and the
sandbox payer's control endpoint."""

from __future__ import annotations

from aiohttp import web

from .. import validation
from ..errors import ApiError, NotFound
from ..schemas import PaymentCompletion
from . import principal, reply, services


async def notify(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        await services(request).payments.notify(request.headers, body)
    except ApiError as exc:
        # WeChat Pay reads {"code": "FAIL"} and retries; our clients read "error".
        return reply({"code": "FAIL", "message": exc.message, **exc.body()}, exc.status)
    return web.Response(status=204)


async def complete_sandbox_payment(request: web.Request) -> web.Response:
    sandbox = services(request).sandbox
    if sandbox is None:
        raise NotFound("payment sandbox")
    prepay_id = request.match_info["prepay_id"]
    data = await validation.body(request, PaymentCompletion)
    origin = str(request.url.origin())
    return reply(await sandbox.complete(principal(request), prepay_id, data, origin), 202)
