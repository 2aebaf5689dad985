"""Flash sales (秒杀): merchants set them up for their store; customers list them and buy."""

from __future__ import annotations

from aiohttp import web

from .. import validation
from ..schemas import FlashOrderIn, FlashSaleIn, FlashSalesQuery
from . import principal, reply, services
from .orders import idempotency_key, placed


async def create(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    data = await validation.body(request, FlashSaleIn)
    return reply(await services(request).flash_sales.create(principal(request), store_id, data),
                 201)


async def listing(request: web.Request) -> web.Response:
    query = validation.query(request, FlashSalesQuery)
    return reply(await services(request).flash_sales.listing(query))


async def one(request: web.Request) -> web.Response:
    return reply(await services(request).flash_sales.one(validation.path_id(request, "sale_id")))


async def buy(request: web.Request) -> web.Response:
    sale_id = validation.path_id(request, "sale_id")
    key = idempotency_key(request)
    data = await validation.body(request, FlashOrderIn)
    return placed(await services(request).flash_sales.buy(principal(request), sale_id, data,
                                                           key))
