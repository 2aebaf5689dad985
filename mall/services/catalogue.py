"""Products and stock as a store's customers and staff see them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from shared.clock import Clock

from ..auth import Principal
from ..errors import Conflict, NotFound
from ..json_body import encode
from ..metrics import MallMetrics
from ..pricing import ServedPrice, stored
from ..schemas import BulkStockIn, ProductIn, ProductsQuery
from ..storage import Database, catalogue, inventory, search_index, stores
from ..storage.catalogue import SEP
from ..validation import decode_cursor, encode_cursor
from . import audit_trail
from .catalogue_cache import CatalogueCache

LOW_STOCK = 5
MAX_SERVED = 20_000   # pages kept as last served, as many as the cache keeps


def stock_state(available: int) -> str:
    if available <= 0:
        return "sold_out"
    return "low" if available <= LOW_STOCK else "in_stock"


def _products(rows, price: ServedPrice) -> list[dict]:
    """Fold SKU rows (ordered by product) into products with their SKUs, without the units
    available (`with_stock` adds them: a page is kept without them)."""
    products = []
    for _, group in groupby(rows, key=lambda row: row["product_id"]):
        group = list(group)
        first = group[0]
        products.append({
            "product_id": first["product_id"], "store_id": first["store_id"],
            "name": first["name"], "description": first["description"],
            "tags": first["tags"].split(SEP) if first["tags"] else [],
            "scenes": first["scenes"].split(SEP) if first["scenes"] else [],
            "skus": [{"sku_id": r["sku_id"], "spec": r["spec"],
                      "price_fen": price(r["sku_id"], r["price_fen"]),
                      "member_price_fen": r["member_price_fen"],
                      "member_level": r["member_level"]}
                     for r in group],
        })
    return products


def with_stock(products: list[dict], available: dict[int, int]) -> list[dict]:
    """Products with each SKU's units available (none when absent) and what they mean."""
    return [{**product, "skus": [
        {**sku, "available": (units := available.get(sku["sku_id"], 0)),
         "stock_state": stock_state(units)} for sku in product["skus"]]}
        for product in products]


def _stock_of(rows) -> dict[int, int]:
    return {row["sku_id"]: row["available"] for row in rows}


@dataclass
class Catalogue:
    db: Database
    clock: Clock
    metrics: MallMetrics
    cache: CatalogueCache
    price: ServedPrice = stored
    # (store, page) -> (the kept page, the stock it was served with, the bytes served): a
    # page whose stock has not moved since is served as it was, not built and encoded again
    _served: dict[tuple, tuple[Any, dict[int, int], bytes]] = field(default_factory=dict)

    async def add_product(self, principal: Principal, store_id: int, data: ProductIn) -> dict:
        now = self.clock.stamp()

        async def add(conn) -> dict:
            product_id, sku_id = await catalogue.insert_product(
                conn, store_id=store_id, name=data.name, description=data.description,
                tags=sorted(set(data.tags)), scenes=sorted(set(data.scenes)), spec=data.spec,
                price_fen=data.price_fen, now=now)
            await search_index.reindex(conn, [product_id])   # searchable at once
            await audit_trail.record(conn, principal, now, "product.create", store_id=store_id,
                                     target_type="sku", target_id=sku_id,
                                     detail={"name": data.name, "price_fen": data.price_fen})
            return {"product_id": product_id, "sku_id": sku_id}

        return await self.db.transaction(add)

    async def products_page(self, store_id: int, query: ProductsQuery) -> bytes:
        """A catalogue page as JSON bytes: kept while the store's products stand, with the
        units available now."""
        key = (query.tag, query.scene, query.q, query.cursor, query.limit)
        page, available = await self._kept(store_id, key,
                                           lambda: self._read_page(store_id, query))
        return self._encoded(store_id, key, page, available, lambda: {
            "items": with_stock(page[0], available), "next_cursor": page[1]})

    async def product_page(self, store_id: int, product_id: int) -> bytes:
        """A product's page as JSON bytes, kept as the catalogue pages are: a product is
        opened about as often as a store's list."""
        key = ("product", product_id)
        products, available = await self._kept(
            store_id, key, lambda: self._read_product(store_id, product_id))
        return self._encoded(store_id, key, products, available,
                             lambda: with_stock(products, available)[0])

    def _encoded(self, store_id: int, key: tuple, page: Any, available: dict[int, int],
                 body: Callable[[], Any]) -> bytes:
        """The page as JSON bytes: as last served when neither it nor its stock has moved
        (a store's list between two of its orders), else `body` encoded."""
        served = self._served.get((store_id, key))
        if served is not None and served[0] is page and served[1] == available:
            return served[2]
        encoded = encode(body())
        if len(self._served) >= MAX_SERVED:
            self._served.clear()   # crude but bounded, as the cache itself
        self._served[(store_id, key)] = (page, available, encoded)
        return encoded

    async def _kept(self, store_id: int, key: tuple,
                    read: Callable[[], Awaitable[tuple[Any, dict[int, int]]]]
                    ) -> tuple[Any, dict[int, int]]:
        """(a page without stock, the units available of its SKUs): kept, or `read`."""
        page, version, available = await self.cache.page(store_id, key)
        self.metrics.catalogue_pages.labels("read" if page is None else "kept").inc()
        if page is None:
            page, available = await read()
            self.cache.put_page(store_id, key, version, page, list(available))
        return page, available

    async def _read_page(self, store_id: int, query: ProductsQuery
                         ) -> tuple[tuple[list[dict], str | None], dict[int, int]]:
        conn = self.db.reader()
        after = decode_cursor(query.cursor, 0)
        rows = await catalogue.products_page(conn, store_id, after_id=after, limit=query.limit,
                                             tag=query.tag, scene=query.scene, query=query.q)
        if not rows and await stores.store(conn, store_id) is None:
            raise NotFound("store", "store_id")
        items = _products(rows, self.price)
        full = len(items) == query.limit
        return (items, encode_cursor(items[-1]["product_id"]) if full else None), _stock_of(rows)

    async def _read_product(self, store_id: int, product_id: int
                            ) -> tuple[list[dict], dict[int, int]]:
        rows = await catalogue.product(self.db.reader(), store_id, product_id)
        if not rows:
            raise NotFound("product", "product_id")
        return _products(rows, self.price), _stock_of(rows)

    async def stock_level(self, store_id: int, sku_id: int) -> dict:
        row = await inventory.level(self.db.reader(), store_id, sku_id)
        if row is None:
            raise NotFound("sku at this store", "sku_id")
        return {k: row[k] for k in ("sku_id", "on_hand", "reserved", "available")}

    async def set_stock(self, principal: Principal, store_id: int,
                        items: list[tuple[int, int]]) -> list[dict]:
        """Absolute stock sync of (sku_id, stock) pairs: all of them, or none."""
        now = self.clock.stamp()

        async def sync(conn) -> list[dict]:
            levels = []
            for index, (sku_id, stock) in enumerate(items):
                field = "sku_id" if len(items) == 1 else f"items.{index}.sku_id"
                current = await inventory.hold(conn, store_id, sku_id, now)
                if current is None:
                    raise NotFound("sku at this store", field)
                row = await inventory.set_on_hand(conn, store_id, sku_id, stock, now)
                if row is None:
                    raise Conflict("below_reserved",
                                   f"stock {stock} is below the {current['reserved']} units "
                                   "held by open orders", field.replace("sku_id", "stock"),
                                   extra={"reserved": current["reserved"]})
                levels.append({k: row[k] for k in ("sku_id", "on_hand", "reserved",
                                                   "available")})
                await audit_trail.record(conn, principal, now, "inventory.set",
                                         store_id=store_id, target_type="sku",
                                         target_id=sku_id,
                                         detail={"from": current["on_hand"], "to": stock})
            return levels

        return await self.db.transaction(sync)

    async def bulk_set_stock(self, principal: Principal, store_id: int,
                             data: BulkStockIn) -> list[dict]:
        return await self.set_stock(principal, store_id,
                                    [(item.sku_id, item.stock) for item in data.items])
