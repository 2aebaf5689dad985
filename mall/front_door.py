"""What every request meets just inside the metrics (so that each is counted, timed and
logged), in one middleware: each layer of middleware costs every request a coroutine, and
the catalogue page, most of the traffic, is cheap enough for that to show.

In order: a tap on a sold-out flash sale is answered at the sale's door
(`mall/flash_sale_door.py`); an overloaded mall sheds what it cannot serve in time
(`mall/shedding.py`), never its operations endpoints; the rest go on, counted in flight."""

from __future__ import annotations

from aiohttp import web

from .flash_sale_door import sold_out_answer
from .shedding import NEVER_SHED, LoadShedder


def front_door(shedder: LoadShedder | None):
    @web.middleware
    async def front(request: web.Request, handler) -> web.StreamResponse:
        answer = sold_out_answer(request)
        if answer is not None:
            return answer
        if shedder is None or request.path in NEVER_SHED:
            return await handler(request)
        refused = shedder.refusal()
        if refused is not None:
            return refused
        shedder.in_flight += 1
        try:
            return await handler(request)
        finally:
            shedder.in_flight -= 1
    return front
