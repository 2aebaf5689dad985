from __future__ import annotations

from aiohttp import web

from .. import validation
from ..schemas import AddressIn, WxLogin
from . import principal, reply, services


async def wx_login(request: web.Request) -> web.Response:
    data = await validation.body(request, WxLogin)
    return reply(await services(request).accounts.wx_login(data.code))


async def add_address(request: web.Request) -> web.Response:
    data = await validation.body(request, AddressIn)
    return reply(await services(request).accounts.add_address(principal(request), data), 201)


async def list_addresses(request: web.Request) -> web.Response:
    return reply({"items": await services(request).accounts.addresses(principal(request))})


async def get_address(request: web.Request) -> web.Response:
    address_id = validation.path_id(request, "address_id")
    return reply(await services(request).accounts.address(principal(request), address_id))


async def my_data(request: web.Request) -> web.Response:
    return reply(await services(request).personal_data.export(principal(request)))


async def delete_me(request: web.Request) -> web.Response:
    return reply(await services(request).personal_data.erase(principal(request)))
