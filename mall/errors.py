"""One error shape for every client-facing failure: `{"error": {"code", "message", "field"}}`.

Services raise `ApiError`; the middleware turns it, aiohttp's own HTTP exceptions and
anything unforeseen into that shape, so a client never sees a traceback.
"""

from __future__ import annotations

import json
import logging
import sqlite3

from aiohttp import web
from pydantic import ValidationError

from .storage.database import DatabaseUnavailable

log = logging.getLogger("mall.errors")


class ApiError(Exception):
    status = 400

    def __init__(
        self,
        code: str,
        message: str,
        field: str | None = None,
        status: int | None = None,
        extra: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra or {}
        self.headers = headers or {}
        if status is not None:
            self.status = status

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "field": self.field,
                          **self.extra}}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404

    def __init__(self, what: str, field: str | None = None) -> None:
        super().__init__("not_found", f"{what} not found", field)


class Conflict(ApiError):
    status = 409


class Unprocessable(ApiError):
    status = 422


class TooManyRequests(ApiError):
    status = 429


def error_response(status: int, code: str, message: str, field: str | None = None,
                   **extra: object) -> web.Response:
    body = {"error": {"code": code, "message": message, "field": field, **extra}}
    return web.json_response(body, status=status)


def from_validation_error(exc: ValidationError, prefix: str = "") -> ApiError:
    """The first problem pydantic found, with its dotted field path (`lines.0.qty`)."""
    first = exc.errors(include_url=False)[0]
    path = ".".join(str(part) for part in first["loc"])
    field = f"{prefix}{path}" if path else (prefix.rstrip(".") or None)
    return BadRequest("invalid_field", f"{field}: {first['msg']}" if field else first["msg"],
                      field)


_HTTP_CODES = {
    404: ("not_found", "no such route"),
    405: ("method_not_allowed", "method not allowed on this route"),
    413: ("body_too_large", "request body too large"),
}


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.body(), status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _HTTP_CODES.get(exc.status, ("http_error", exc.reason))
        resp = error_response(exc.status, code, message, "body" if exc.status == 413 else None)
        for header in ("Allow", "Retry-After"):
            if header in exc.headers:
                resp.headers[header] = exc.headers[header]
        return resp
    except json.JSONDecodeError as exc:
        return error_response(400, "invalid_json", f"body is not valid JSON: {exc.msg}", "body")
    except DatabaseUnavailable as exc:
        log.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
        resp = error_response(503, "database_unavailable",
                              "the database is unavailable; try again shortly")
        resp.headers["Retry-After"] = "1"
        return resp
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            log.exception("database error on %s %s", request.method, request.path)
            return error_response(500, "internal", "internal error; it has been logged")
        # Another process held the write lock past the busy timeout: nothing was written
        # (the transaction rolled back), so the client may simply try again.
        log.warning("database busy on %s %s: %s", request.method, request.path, exc)
        resp = error_response(503, "database_busy", "the database is busy; try again shortly")
        resp.headers["Retry-After"] = "1"
        return resp
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; it has been logged")
