"""Membership: the levels, my level and points, my points ledger, and member prices that
stores set on their SKUs (points are redeemed with `points` on a new order)."""

from __future__ import annotations

from aiohttp import web

from .. import validation
from ..schemas import MemberPriceIn, PageQuery
from . import principal, reply, services


async def levels(request: web.Request) -> web.Response:
    return reply(services(request).membership.levels())


async def mine(request: web.Request) -> web.Response:
    return reply(await services(request).membership.summary(principal(request)))


async def my_points(request: web.Request) -> web.Response:
    query = validation.query(request, PageQuery)
    return reply(await services(request).membership.statement(principal(request), query))


async def store_prices(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    return reply(await services(request).membership.prices(store_id))


async def set_price(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    sku_id = validation.path_id(request, "sku_id")
    data = await validation.body(request, MemberPriceIn)
    return reply(await services(request).membership.set_price(principal(request), store_id,
                                                               sku_id, data))


async def drop_price(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    sku_id = validation.path_id(request, "sku_id")
    return reply(await services(request).membership.drop_price(principal(request), store_id,
                                                                sku_id))
