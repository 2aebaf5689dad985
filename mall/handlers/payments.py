"""The payment notification endpoint: called by the payer, not by customers."""

from __future__ import annotations

from aiohttp import web

from ..errors import ApiError
from . import reply, services


async def notify(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        await services(request).payments.notify(request.headers, body)
    except ApiError as exc:
        # WeChat Pay reads {"code": "FAIL"} and retries; our clients read "error".
        return reply({"code": "FAIL", "message": exc.message, **exc.body()}, exc.status)
    return web.Response(status=204)
