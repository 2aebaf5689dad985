"""Group buys (拼团): stores set up campaigns; customers open groups, share them, join them."""

from __future__ import annotations

from aiohttp import web

from .. import validation
from ..schemas import CampaignOrderIn, GroupBuyIn, GroupBuysQuery
from . import principal, reply, services
from .orders import idempotency_key, placed


async def create(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    data = await validation.body(request, GroupBuyIn)
    return reply(await services(request).group_buys.create(principal(request), store_id, data),
                 201)


async def listing(request: web.Request) -> web.Response:
    query = validation.query(request, GroupBuysQuery)
    return reply(await services(request).group_buys.listing(query))


async def open_group(request: web.Request) -> web.Response:
    campaign_id = validation.path_id(request, "group_buy_id")
    key = idempotency_key(request)
    data = await validation.body(request, CampaignOrderIn)
    return placed(await services(request).group_buys.open(principal(request), campaign_id,
                                                           data, key))


async def group(request: web.Request) -> web.Response:
    return reply(await services(request).group_buys.group(validation.path_id(request,
                                                                             "group_id")))


async def shared_group(request: web.Request) -> web.Response:
    code = request.match_info["share_code"]
    return reply(await services(request).group_buys.group_by_code(code))


async def join(request: web.Request) -> web.Response:
    group_id = validation.path_id(request, "group_id")
    key = idempotency_key(request)
    data = await validation.body(request, CampaignOrderIn)
    return placed(await services(request).group_buys.join(principal(request), group_id, data,
                                                           key))
