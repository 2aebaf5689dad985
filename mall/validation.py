"""Turning request bytes and query strings into validated models, or a 4xx naming the field."""

from __future__ import annotations

import base64
import binascii
import json
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from .errors import BadRequest, NotFound, from_validation_error

M = TypeVar("M", bound=BaseModel)


async def body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            raise BadRequest("invalid_json", "body is not valid JSON", "body") from exc
        if first["type"] == "model_type":
            raise BadRequest("invalid_body", "body must be a JSON object", "body") from exc
        raise from_validation_error(exc) from exc


# Query strings already parsed, per model: the home screen's few shapes repeat all evening
# and the models are frozen, so one parse serves every request that sends the same string.
_PARSED: dict[tuple[type, str], BaseModel] = {}
_MAX_PARSED = 10_000


def query(request: web.Request, model: type[M]) -> M:
    key = (model, request.query_string)
    parsed = _PARSED.get(key)
    if parsed is None:
        try:
            parsed = model.model_validate(dict(request.query))
        except ValidationError as exc:
            raise from_validation_error(exc) from exc
        if len(_PARSED) >= _MAX_PARSED:
            _PARSED.clear()
        _PARSED[key] = parsed
    return parsed  # type: ignore[return-value]


def path_id(request: web.Request, name: str) -> int:
    """A positive integer id from the path; anything else names no resource, so 404.

    Only ASCII digits: `str.isdigit()` also accepts ¹, ٣ and full-width digits, which
    `int()` then refuses (or reads as another number)."""
    text = request.match_info[name]
    if not (text.isascii() and text.isdigit()) or len(text) > 18 or int(text) == 0:
        raise NotFound(name.removesuffix("_id"), name)
    return int(text)


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, default: int) -> int:
    """The position a cursor stands for; cursors are opaque to clients but only ever ints.

    Bounded like every id (2**62): a forged cursor holding a larger int would overflow
    SQLite's 64-bit integers in the query that uses it."""
    if cursor is None:
        return default
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        value = None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**62:
        raise BadRequest("invalid_cursor", "cursor is not one this server issued", "cursor")
    return value


def point(lat: float | None, lng: float | None) -> tuple[float, float] | None:
    """A customer's point, or None when they gave none; half a point locates nobody, so it
    is refused naming the half that is missing."""
    if lat is None and lng is None:
        return None
    if lat is None or lng is None:
        missing = "lat" if lat is None else "lng"
        raise BadRequest("invalid_field", f"{missing}: lat and lng go together", missing)
    return lat, lng
