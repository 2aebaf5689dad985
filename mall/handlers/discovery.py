"""The home screen's scene recommendations and search across stores: public, as the
mini-program shows both before a customer logs in."""

from __future__ import annotations

from aiohttp import web

from .. import validation
from ..schemas import RecommendationsQuery, SearchQuery
from . import reply, services


async def recommendations(request: web.Request) -> web.Response:
    query = validation.query(request, RecommendationsQuery)
    return reply(await services(request).discovery.recommend(query))


async def search(request: web.Request) -> web.Response:
    query = validation.query(request, SearchQuery)
    return reply(await services(request).discovery.search(query))
