"""A customer's orders and paying for them."""

from __future__ import annotations

from aiohttp import web

from .. import validation
from ..errors import BadRequest
from ..schemas import OrderIn, PageQuery
from . import principal, reply, services

IDEMPOTENCY_KEY = "Idempotency-Key"


def idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is not None and not (1 <= len(key) <= 255 and key.isprintable()):
        raise BadRequest("invalid_idempotency_key", "keys are 1-255 printable characters",
                         IDEMPOTENCY_KEY)
    return key


def placed(result: tuple[dict, bool]) -> web.Response:
    """A new order's answer: 201, marked when it replays the order its key first made."""
    summary, replayed = result
    return reply(summary, 201, {"Idempotent-Replayed": "true"} if replayed else None)


async def create_order(request: web.Request) -> web.Response:
    key = idempotency_key(request)
    data = await validation.body(request, OrderIn)
    return placed(await services(request).orders.create(principal(request), data, key))


async def list_orders(request: web.Request) -> web.Response:
    query = validation.query(request, PageQuery)
    return reply(await services(request).orders.list_mine(principal(request), query))


async def get_order(request: web.Request) -> web.Response:
    order_id = validation.path_id(request, "order_id")
    return reply(await services(request).orders.mine(principal(request), order_id))


async def cancel_order(request: web.Request) -> web.Response:
    order_id = validation.path_id(request, "order_id")
    return reply(await services(request).orders.cancel(principal(request), order_id))


async def pay_order(request: web.Request) -> web.Response:
    order_id = validation.path_id(request, "order_id")
    svc = services(request)
    notify_url = (svc.config.notify_url
                  or f"{request.url.origin()}/api/v1/payments/notify")
    return reply(await svc.payments.prepay(principal(request), order_id, notify_url), 201)
