"""Store staff endpoints; the route guard has already checked the caller works here."""

from __future__ import annotations

from aiohttp import web

from .. import validation
from ..schemas import (
    BulkStockIn,
    KpisQuery,
    PageQuery,
    PickupCode,
    ProductIn,
    StockIn,
    StoreOrdersQuery,
)
from . import principal, reply, services


async def add_product(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    data = await validation.body(request, ProductIn)
    return reply(await services(request).catalogue.add_product(principal(request), store_id,
                                                                data), 201)


async def get_stock(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    sku_id = validation.path_id(request, "sku_id")
    return reply(await services(request).catalogue.stock_level(store_id, sku_id))


async def set_stock(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    sku_id = validation.path_id(request, "sku_id")
    data = await validation.body(request, StockIn)
    levels = await services(request).catalogue.set_stock(principal(request), store_id,
                                                         [(sku_id, data.stock)])
    return reply(levels[0])


async def bulk_set_stock(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    data = await validation.body(request, BulkStockIn)
    levels = await services(request).catalogue.bulk_set_stock(principal(request), store_id,
                                                              data)
    return reply({"items": levels})


async def store_orders(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    query = validation.query(request, StoreOrdersQuery)
    return reply(await services(request).orders.store_day(store_id, query))


def _store_order(request: web.Request) -> tuple[int, int]:
    return validation.path_id(request, "store_id"), validation.path_id(request, "order_id")


async def store_order(request: web.Request) -> web.Response:
    store_id, order_id = _store_order(request)
    return reply(await services(request).orders.for_store(store_id, order_id))


async def store_kpis(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    query = validation.query(request, KpisQuery)
    return reply(await services(request).store_kpis.for_store(store_id, query))


async def pickup_queue(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    return reply(await services(request).orders.pickup_queue(store_id))


async def mark_ready(request: web.Request) -> web.Response:
    store_id, order_id = _store_order(request)
    return reply(await services(request).pickup.mark_ready(principal(request), store_id, order_id))


async def verify_pickup(request: web.Request) -> web.Response:
    store_id, order_id = _store_order(request)
    data = await validation.body(request, PickupCode)
    return reply(await services(request).pickup.verify(principal(request), store_id, order_id,
                                                       data.code))


async def dispatch(request: web.Request) -> web.Response:
    store_id, order_id = _store_order(request)
    return reply(await services(request).pickup.dispatch(principal(request), store_id, order_id))


async def delivered(request: web.Request) -> web.Response:
    store_id, order_id = _store_order(request)
    return reply(await services(request).pickup.delivered(principal(request), store_id, order_id))


async def audit_log(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    query = validation.query(request, PageQuery)
    return reply(await services(request).stores.audit_entries(store_id, query))
