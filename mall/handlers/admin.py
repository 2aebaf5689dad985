"""Operator endpoints: onboarding stores, their staff and pickup points."""

from __future__ import annotations

from aiohttp import web

from .. import validation
from ..schemas import KpisQuery, PickupPointIn, StaffIn, StoreIn
from . import principal, reply, services


async def create_store(request: web.Request) -> web.Response:
    data = await validation.body(request, StoreIn)
    return reply(await services(request).stores.create(principal(request), data), 201)


async def add_staff(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    data = await validation.body(request, StaffIn)
    result = await services(request).stores.add_staff(principal(request), store_id, data)
    return reply(result, 201 if result["added"] else 200)


async def add_pickup_point(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    data = await validation.body(request, PickupPointIn)
    return reply(await services(request).stores.add_pickup_point(principal(request), store_id,
                                                                  data), 201)


async def area_kpis(request: web.Request) -> web.Response:
    query = validation.query(request, KpisQuery)
    return reply(await services(request).store_kpis.by_area(query))
