"""Structured access log (one JSON object per request) and request metrics.

The log carries the route template and user id, never a body; the path passes through
the phone mask in case a client put personal data in a query string."""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .auth import PRINCIPAL
from .metrics import MallMetrics
from .privacy import MaskingFilter, mask_text

METRICS = web.AppKey("metrics", MallMetrics)
_UNMATCHED = "unmatched"


def route_template(request: web.Request) -> str:
    info = request.match_info
    resource = info.route.resource if info.http_exception is None else None
    return resource.canonical if resource is not None else _UNMATCHED


class JsonAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        principal = request.get(PRINCIPAL)
        self.logger.info(json.dumps({
            "method": request.method,
            "route": route_template(request),  # type: ignore[arg-type]
            "path": mask_text(request.path_qs),
            "status": response.status,
            "ms": round(time * 1000, 2),
            "user_id": principal.user_id if principal else None,
            "remote": request.remote,
        }, ensure_ascii=False))


def access_logger() -> logging.Logger:
    logger = logging.getLogger("mall.access")
    if not any(isinstance(f, MaskingFilter) for f in logger.filters):
        logger.addFilter(MaskingFilter())
    return logger


@web.middleware
async def metrics_middleware(request: web.Request, handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[METRICS].observe_request(request.method, route_template(request), status,
                                             time.perf_counter() - started)
