"""HTTP handlers: each parses and validates its request, calls one service, and replies.
The route table in `mall.routes` says which handler serves which path and who may call it."""

from __future__ import annotations

from aiohttp import web

from ..auth import PRINCIPAL, Principal, bearer_token
from ..errors import Unauthorized
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


def visitor(request: web.Request) -> int | None:
    """The customer a public page is shown to, when their token comes with the request (the
    mini-program sends it on every request once logged in); None for anyone else."""
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        return None
    svc = services(request)
    try:
        seen = svc.signer.verify(token, svc.clock.wall())
    except Unauthorized:
        return None
    return None if seen.is_operator else seen.user_id
