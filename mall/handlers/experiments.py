"""A/B experiments as the mini-program sees them."""

from __future__ import annotations

from aiohttp import web

from . import principal, reply, services


async def mine(request: web.Request) -> web.Response:
    return reply(services(request).experiments.assigned(principal(request)))
