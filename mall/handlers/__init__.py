"""HTTP handlers: each parses and validates its request, calls one service, and replies.
The route table in `mall.routes` says which handler serves which path and who may call it."""

from __future__ import annotations

import json
from functools import partial

from aiohttp import web

from ..auth import PRINCIPAL, Principal
from ..services.registry import SERVICES, Services

_dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def reply(data: object, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=_dumps)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]
