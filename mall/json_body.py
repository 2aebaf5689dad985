"""The one JSON encoding of response bodies: UTF-8 text as is (Chinese names stay readable
and short), no padding.  Encoded by orjson: serialising pages and orders with the standard
library's encoder was about a twentieth of the mall's CPU at the late-night crest, and orjson
writes the same bytes (UTF-8, compact) several times faster, straight to bytes."""

from __future__ import annotations

import orjson


def encode(data: object) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
