"""The one JSON encoding of response bodies: UTF-8 text as is (Chinese names stay readable
and short), no padding."""

from __future__ import annotations

import json
from functools import partial

dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))
