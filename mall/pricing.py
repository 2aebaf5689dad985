"""The price a customer is served for a SKU: its stored price, unless a fault profile
changes it.  Catalogue pages, product detail and order totals all ask here, so what a
customer sees is what an order charges."""

from __future__ import annotations

from collections.abc import Callable

ServedPrice = Callable[[int, int], int]   # (sku id, stored price in fen) -> fen


def stored(sku_id: int, price_fen: int) -> int:
    return price_fen
