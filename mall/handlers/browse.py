"""Public browsing: what a customer sees before logging in."""

from __future__ import annotations

from aiohttp import web

from .. import validation
from ..schemas import ProductsQuery, StoresQuery
from . import reply, reply_bytes, services, visitor


async def list_stores(request: web.Request) -> web.Response:
    query = validation.query(request, StoresQuery)
    return reply(await services(request).stores.search(query))


async def get_store(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    return reply(await services(request).stores.detail(store_id))


async def list_products(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    query = validation.query(request, ProductsQuery)
    page = await services(request).catalogue.products_page(store_id, query)
    customer = visitor(request)
    if customer is not None:   # a store visit, for its dashboard's conversion
        services(request).store_kpis.visits.saw(store_id, customer)
    return reply_bytes(page)


async def get_product(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    product_id = validation.path_id(request, "product_id")
    return reply_bytes(await services(request).catalogue.product_page(store_id, product_id))
