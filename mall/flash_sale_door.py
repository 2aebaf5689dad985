"""The door in front of a flash sale's crowd.  Once this process knows a sale is sold out,
thousands of taps a second on it are answered here, just inside the metrics (each is still
counted, timed and logged) and before load shedding, the error layer, access control and
the handler: the caller's token is verified, the sale's memory read, and a prebuilt 409 sent.
Every other request, and any tap the door cannot decide (no valid token, a deleted account,
a sale not in memory), goes the whole way and gets the full answer there."""

from __future__ import annotations

import re

from aiohttp import web

from .auth import PRINCIPAL, bearer_token
from .errors import ApiError, Conflict
from .handlers.orders import IDEMPOTENCY_KEY
from .json_body import encode
from .services.flash_sales import SOLD_OUT
from .services.registry import SERVICES

_BUY = re.compile(r"/api/v1/flash-sales/([1-9][0-9]{0,17})/orders")
_SOLD_OUT_BODY = encode(Conflict("sold_out", SOLD_OUT, "sale_id").body())


def sold_out_answer(request: web.Request) -> web.Response | None:
    """The prebuilt 409 for a tap on a sale this process knows is sold out, else None (the
    request goes on its way)."""
    if request.method != "POST" or (buy := _BUY.fullmatch(request.path)) is None:
        return None
    svc = request.app[SERVICES]
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        return None
    try:
        principal = svc.signer.verify(token, svc.clock.wall())
        svc.accounts.require_live(principal)
    except ApiError:
        return None   # the full path answers 401
    if not svc.flash_sales.sold_out_at_the_door(int(buy[1]), principal.user_id,
                                                IDEMPOTENCY_KEY in request.headers):
        return None
    request[PRINCIPAL] = principal   # the access log names the caller
    svc.flash_sales.refused_at_the_door.inc()
    return web.Response(body=_SOLD_OUT_BODY, status=409, content_type="application/json")
