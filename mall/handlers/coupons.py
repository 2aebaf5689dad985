"""Coupons: issued by operators (any scope) and merchants (their store), claimed by
customers, listed, and applied at order time (`coupon_id` on a new order)."""

from __future__ import annotations

from aiohttp import web

from .. import validation
from ..schemas import CouponsQuery, CouponTemplateIn
from . import principal, reply, services


async def issue(request: web.Request) -> web.Response:
    data = await validation.body(request, CouponTemplateIn)
    return reply(await services(request).coupons.issue(principal(request), data), 201)


async def issue_for_store(request: web.Request) -> web.Response:
    store_id = validation.path_id(request, "store_id")
    data = await validation.body(request, CouponTemplateIn)
    return reply(await services(request).coupons.issue(principal(request), data, store_id),
                 201)


async def claimable(request: web.Request) -> web.Response:
    query = validation.query(request, CouponsQuery)
    return reply(await services(request).coupons.claimable(query))


async def claim(request: web.Request) -> web.Response:
    template_id = validation.path_id(request, "template_id")
    return reply(await services(request).coupons.claim(principal(request), template_id), 201)


async def mine(request: web.Request) -> web.Response:
    return reply(await services(request).coupons.mine(principal(request)))
