"""After-sales: customers ask for refunds; stores list and decide them."""

from __future__ import annotations

from aiohttp import web

from .. import validation
from ..schemas import RefundDecisionIn, RefundIn, RefundsQuery
from . import principal, reply, services


async def request_refund(request: web.Request) -> web.Response:
    order_id = validation.path_id(request, "order_id")
    data = await validation.body(request, RefundIn)
    return reply(await services(request).after_sales.request(principal(request), order_id,
                                                             data), 201)


async def my_refund(request: web.Request) -> web.Response:
    order_id = validation.path_id(request, "order_id")
    return reply(await services(request).after_sales.mine(principal(request), order_id))


async def store_refunds(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    query = validation.query(request, RefundsQuery)
    return reply(await services(request).after_sales.for_store(store_id, query))


async def decide_refund(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    order_id = validation.path_id(request, "order_id")
    data = await validation.body(request, RefundDecisionIn)
    return reply(await services(request).after_sales.decide(principal(request), store_id,
                                                            order_id, data))
