"""HTTP handlers: each parses and validates its request, calls one service, and replies.
The route table in `mall.routes` says which handler serves which path and who may call it."""

from __future__ import annotations

from aiohttp import web

from ..auth import PRINCIPAL, Principal
from ..json_body import encode
from ..services.registry import SERVICES, Services


def reply(data: object, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=encode(data), status=status, headers=headers,
                        content_type="application/json", charset="utf-8")


def reply_bytes(body: bytes) -> web.Response:
    """A JSON body serialised earlier (a cached page)."""
    return web.Response(body=body, content_type="application/json", charset="utf-8")


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]
