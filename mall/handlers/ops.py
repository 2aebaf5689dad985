"""Operations endpoints: liveness, readiness, the API description, and metrics."""

from __future__ import annotations

import os

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from ..openapi import OPENAPI
from . import reply, services


async def healthz(request: web.Request) -> web.Response:
    return reply({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers through the read path the API uses."""
    svc = services(request)
    try:
        rows = await svc.db.reader().execute_fetchall("SELECT max(version) FROM schema_migrations")
    except Exception as exc:  # any database failure means not ready, never a 500
        return reply({"status": "unavailable", "reason": type(exc).__name__}, 503)
    return reply({"status": "ready", "schema_version": rows[0][0], "engine": svc.db.engine,
                  "pid": os.getpid(),   # which worker answered (serve --workers)
                  "clock": svc.clock.describe(),
                  "clock_anchor": svc.clock.anchor() if svc.clock.simulated else None,
                  "payer": svc.config.payer_url})


async def openapi(request: web.Request) -> web.Response:
    return reply(request.app[OPENAPI])


async def metrics(request: web.Request) -> web.Response:
    body = services(request).metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
