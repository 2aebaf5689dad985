"""What every store campaign (a flash sale, a group buy) must say of itself: one of the
store's own SKUs, at a price below its list price, in a window that ends after it starts."""

from __future__ import annotations

from datetime import datetime

from ..errors import BadRequest, NotFound
from ..storage import catalogue
from ..storage.database import Connection


async def check_offer(conn: Connection, store_id: int, sku_id: int, price_fen: int,
                      price_field: str, starts_at: datetime, ends_at: datetime) -> None:
    """A 404 or 400 naming the field that breaks the rule, or nothing."""
    skus = await catalogue.skus_at_store(conn, store_id, [sku_id])
    if sku_id not in skus:
        raise NotFound("sku at this store", "sku_id")
    if price_fen >= skus[sku_id]["price_fen"]:
        raise BadRequest("not_a_discount", f"{price_field} must be below the list price of "
                         f"{skus[sku_id]['price_fen']} fen", price_field)
    if ends_at <= starts_at:
        raise BadRequest("empty_window", "ends_at must be after starts_at", "ends_at")
