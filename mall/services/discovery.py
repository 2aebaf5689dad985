"""Discovery: the home screen's scene recommendations (首页场景推荐) and search across the
city's stores.

The scene is the mall clock's, never the wall clock's: a simulated late-night peak must be
recommended 夜宵 however early the run really is.  Scene windows, what each recommends and
how it says why live in `mall/data/scenes.toml`, so that wording and windows change without
code.  Recommendation score, in order: distance (nearest store first; without the
customer's point every store counts as equally near), then price (cheapest first), then
product id; closed stores and products out of stock never appear.  Search rank, in order:
a match in the product's name, then a match in a tag only; then distance (when a point is
given); then product id."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from sqlite3 import Row
from typing import Literal

from shared.clock import Clock

from .. import search_terms
from ..errors import BadRequest
from ..geo import bounding_box, distance_km
from ..metrics import MallMetrics
from ..opening_hours import is_open
from ..pricing import ServedPrice, stored
from ..scenes import Scene, Scenes
from ..schemas import RecommendationsQuery, SearchQuery
from ..storage import Database, discovery, search_index, stores
from ..storage.catalogue import SEP
from ..validation import decode_cursor, encode_cursor, point
from .catalogue_cache import CatalogueCache
from .stores import known_district, stores_near

NEAREST_BATCH = 12   # stores asked at a time for recommendations near a point
MAX_KEPT_WORDS = 2_000   # searches whose matches per store are kept
MAX_KEPT_MATCHES = 200_000   # products kept as matches, all words together (~20 MB)


def _metres(km: float | None) -> int | None:
    """Whole metres: what a customer is shown, and so what ranks, so that two stores shown
    at the same distance are ranked by what comes next."""
    return None if km is None else round(km * 1000)


def distance_text(metres: int) -> str:
    """How far, as a customer reads it: `600 米`, `1.2 公里`."""
    tens = max(10, round(metres, -1))
    return f"{tens:.0f} 米" if tens < 1000 else f"{metres / 1000:.1f} 公里"


Hit = tuple[int, bool, int | None, bool]   # product id, by name?, metres, open now?
StoreMatches = tuple[Row, list[tuple[int, bool]]]   # the store (where, when); (product, by name?)


@dataclass(frozen=True)
class Where:
    """A search's filters on where and when: the customer's point, the box around it, the
    district, the radius and whether the store must be open (or closed) now."""

    at: tuple[float, float] | None
    box: tuple[float, float, float, float] | None
    district: str | None
    radius_m: int | None
    open_now: bool | None
    now: datetime

    def place(self, store: Row) -> tuple[int | None, bool] | None:
        """(metres from the point, open now?) of a store the filters keep, else None."""
        metres = None if self.at is None else _metres(distance_km(*self.at, store["lat"],
                                                                  store["lng"]))
        if self.radius_m is not None and metres is not None and metres > self.radius_m:
            return None
        open_now = is_open(store["opens_at"], store["closes_at"], self.now)
        if self.open_now is not None and open_now != self.open_now:
            return None
        return metres, open_now


@dataclass
class Discovery:
    db: Database
    clock: Clock
    metrics: MallMetrics
    scenes: Scenes
    cache: CatalogueCache
    price: ServedPrice = stored
    # Search expression -> (the index version it was counted at, matches per store).
    _index_counts: dict[str, tuple[int, dict[int, int]]] = field(default_factory=dict)
    # (text, tag, district) -> (the search content it was found at, matches by store).
    _matches: dict[tuple, tuple[int, dict[int, StoreMatches]]] = field(default_factory=dict)
    _kept_matches: int = 0   # products in `_matches`, all words together

    async def recommend(self, query: RecommendationsQuery) -> dict:
        """The scene of the mall clock's moment, and what it recommends near the customer
        (or city-wide, saying so, when the mini-program has no point)."""
        at = point(query.lat, query.lng)
        now = self.clock.now()
        scene = self.scenes.at(now)
        conn = self.db.reader()
        if at is not None:
            found = await stores_near(conn, at, scene.radius_m / 1000, None)
        else:
            found = [(None, row) for row in await stores.stores_in_district(conn, None)]
        open_now = {row["id"]: (_metres(km), row) for km, row in found
                    if is_open(row["opens_at"], row["closes_at"], now)}
        cheapest = query.strategy == "cheapest"
        offers = await self._offers(conn, scene, open_now, None if cheapest else scene.limit)
        priced = [(self.price(o["sku_id"], o["price_fen"]), o) for o in offers]

        def rank(item: tuple[int, Row]) -> tuple[int, int, int]:
            """Nearest first, or (an A/B arm, mall/data/experiments.toml) cheapest first."""
            price_fen, offer = item
            metres = open_now[offer["store_id"]][0] or 0
            first = (price_fen, metres) if cheapest else (metres, price_fen)
            return (*first, offer["product_id"])

        priced.sort(key=rank)
        items = []
        for price_fen, offer in priced[:scene.limit]:
            metres, store = open_now[offer["store_id"]]
            items.append({
                "store_id": store["id"], "store_name": store["name"],
                "district": store["district"], "business_circle": store["business_circle"],
                "product_id": offer["product_id"], "product_name": offer["product_name"],
                "sku_id": offer["sku_id"], "price_fen": price_fen,
                "distance_m": metres, "open_now": True,
                "reason": self._reason(scene, now, metres, store, offer["product_name"])})
        self.metrics.recommendations.labels(scene.key).inc()
        return {"scene": scene.key, "scene_title": scene.title, "at": self.clock.stamp(now),
                "located": at is not None, "items": items}

    async def _offers(self, conn, scene: Scene, open_now: dict[int, tuple[int | None, Row]],
                      enough: int | None) -> list[Row]:
        """The scene's offers at the open stores, asked nearest stores first, a few stores
        at a time, until there are enough: in the centre of a city a 3 km circle holds
        hundreds of stores, and asking all of them cost ~20 ms where the nearest ten
        suffice.  Distance ranks first, so no store farther than those asked can displace
        what they offer; a batch takes in every store as near as its last one, so that a
        tie in distance is never split.  Without a point every store is as near: one ask;
        with `enough` None (ranking by price) every store in reach is asked."""
        stores_in_order = list(open_now.items())
        offers: list[Row] = []
        start = 0
        while start < len(stores_in_order):
            end = start + NEAREST_BATCH
            if stores_in_order[0][1][0] is None or enough is None:
                end = len(stores_in_order)
            while end < len(stores_in_order) and \
                    stores_in_order[end][1][0] == stores_in_order[end - 1][1][0]:
                end += 1
            offers += await self._store_offers(
                conn, scene, [store_id for store_id, _ in stores_in_order[start:end]])
            if enough is not None and len(offers) >= enough:
                break
            start = end
        return offers

    async def _store_offers(self, conn, scene: Scene, store_ids: list[int]) -> list[Row]:
        """Each store's offers for the scene, in the order of `store_ids`: what a store
        offers changes only with its catalogue version (stock, products, tags, scenes), so
        it is kept per store and version, as catalogue pages are, and shared by every
        customer near that store.  The stores not kept are asked in one query (in a thread
        when there are many: a city-wide ask costs tens of milliseconds)."""
        key = ("scene_offers", scene.key, scene.per_store)
        looked = await self.cache.lookup_many(store_ids, key)
        kept: dict[int, list[Row] | None] = {store_id: looked[store_id][0]
                                             for store_id in store_ids}
        versions = {store_id: looked[store_id][1] for store_id in store_ids}
        missing = [store_id for store_id in store_ids if kept[store_id] is None]
        if missing:
            asker = conn if len(missing) <= 2 * NEAREST_BATCH else self.db.scan_reader()
            found: dict[int, list[Row]] = {store_id: [] for store_id in missing}
            for row in await discovery.scene_offers(asker, missing, scene.product_scenes,
                                                    scene.product_tags, scene.per_store):
                found[row["store_id"]].append(row)
            for store_id, rows in found.items():
                kept[store_id] = rows
                self.cache.put(store_id, key, versions[store_id], rows)
        return [row for store_id in store_ids for row in kept[store_id]]

    def _reason(self, scene: Scene, now: datetime, metres: int | None, store,
                product: str) -> str:
        if metres is None:
            template = scene.reason_far
        elif scene.reason_school and self.scenes.near_school(store["business_circle"]):
            template = scene.reason_school
        else:
            template = scene.reason
        return template.format(time=now.strftime("%H:%M"), store=store["name"],
                               circle=store["business_circle"] or "", product=product,
                               distance="" if metres is None else distance_text(metres))

    async def search(self, query: SearchQuery) -> dict:
        at = point(query.lat, query.lng)
        if query.radius_m is not None and at is None:
            raise BadRequest("missing_point", "radius_m: a radius needs lat and lng",
                             "radius_m")
        text = (query.q or "").lower() or None
        if text is None and query.tag is None and query.district is None \
                and query.radius_m is None:
            raise BadRequest("empty_search", "q: say what to look for, or narrow by tag, "
                             "district or radius_m", "q")
        offset = decode_cursor(query.cursor, 0)
        conn = self.db.reader()
        district = None
        if query.district is not None:
            district = await known_district(conn, query.district)
        box = None
        if at is not None and query.radius_m is not None:
            box = bounding_box(*at, query.radius_m / 1000)
        where = Where(at, box, district, query.radius_m, query.open_now, self.clock.now())
        index = await search_index.state(conn)
        # PostgreSQL has no FTS5: it scans (docs/scale.md)
        if text is not None and query.tag is None and search_terms.indexable(text) \
                and not index.stale and self.db.engine == "sqlite":
            via = "index"
            total, page = await self._ranked_by_index(conn, text, index.version, where,
                                                      offset, query.limit)
        else:   # a scan, in a thread: a word or tag may match thousands of products
            via, conn = "scan", self.db.scan_reader()
            matches = await self._matching(conn, text, query.tag, where.district,
                                           index.content)
            total, page = _ranked_by_scan(matches, text, where, offset, query.limit)
        shown = {row["product_id"]: row for row in
                 await discovery.offered(conn, [hit[0] for hit in page], text)}
        items = []
        for product_id, by_name, metres, open_now in page:
            row = shown[product_id]
            matched_on, why = _why(row, by_name, query)
            if metres is not None:
                why += f"，离你 {distance_text(metres)}"
            items.append({
                "product_id": product_id, "product_name": row["product_name"],
                "tags": row["tags"].split(SEP) if row["tags"] else [],
                "store_id": row["store_id"], "store_name": row["store_name"],
                "district": row["district"], "sku_id": row["sku_id"],
                "price_fen": self.price(row["sku_id"], row["price_fen"]),
                "in_stock": bool(row["in_stock"]), "open_now": open_now,
                "distance_m": metres, "matched_on": matched_on, "reason": why})
        self.metrics.searches.labels("hits" if total else "none", via).inc()
        more = offset + query.limit < total
        return {"items": items, "total": total,
                "next_cursor": encode_cursor(offset + query.limit) if more else None}

    async def _counts(self, conn, expression: str, version: int) -> dict[int, int]:
        """A word's matches per store, kept while the index's version stands: counting a
        word found in a quarter of the city's products reads 12,000 index entries (~3 ms),
        and customers search the same few words all evening."""
        kept = self._index_counts.get(expression)
        if kept is not None and kept[0] == version:
            return kept[1]
        counts = await search_index.counts(conn, expression)
        if len(self._index_counts) >= MAX_KEPT_WORDS:
            self._index_counts.clear()
        self._index_counts[expression] = (version, counts)
        return counts

    async def reindex_stale(self, batch: int = 2000) -> int:
        """Index the products another writer changed (an older build, a bulk load); how
        many.  In the writer thread: a freshly migrated city may hold a hundred thousand."""
        if not (await search_index.state(self.db.reader())).stale:
            return 0
        return await self.db.transaction(
            lambda conn: search_index.reindex(conn, batch=batch), long=True)

    async def _matching(self, conn, text: str | None, tag: str | None,
                        district: str | None, content: int) -> dict[int, StoreMatches]:
        """Every product matching, by store, wherever the customer is: kept while the city's
        search content stands (migration 0017), since customers search the same few words
        all evening and a word's matches do not move with stock.  Read after `content`, so
        matches read across a change are kept under the older number and never served after
        it."""
        key = (text, tag, district)
        kept = self._matches.get(key)
        if kept is not None and kept[0] == content:
            return kept[1]
        by_store: dict[int, StoreMatches] = {}
        for row in await discovery.matching_products(conn, text=text, tag=tag,
                                                     district_code=district):
            store = by_store.get(row["store_id"])
            if store is None:
                store = by_store[row["store_id"]] = (row, [])
            store[1].append((row["product_id"], bool(text and row["name_match"])))
        found = sum(len(products) for _, products in by_store.values())
        if len(self._matches) >= MAX_KEPT_WORDS or self._kept_matches + found > MAX_KEPT_MATCHES:
            self._matches.clear()   # crude but bounded, in words and in memory
            self._kept_matches = 0
        self._matches[key] = (content, by_store)
        self._kept_matches += found
        return by_store

    async def _ranked_by_index(self, conn, text: str, version: int, where: Where,
                               offset: int, limit: int) -> tuple[int, list[Hit]]:
        """The same ranking from the search index, at a cost that grows with the stores in
        reach rather than with the products matching (辣 matches a quarter of a city's
        products): the index counts matches per store, the stores in reach are placed and
        ordered (rank: name matches before tag-only ones, then distance, then product id),
        and only the stores the page falls in are asked for their products."""
        found = (await stores.stores_in_box(conn, *where.box, where.district)
                 if where.box is not None else
                 await stores.stores_in_district(conn, where.district))
        scope = {row["id"]: placed for row in found
                 if (placed := where.place(row)) is not None}
        terms = search_terms.index_query(text)
        total, page = 0, []
        for by_name, expression in ((True, terms.by_name), (False, terms.by_tag_only)):
            counts = {store_id: n for store_id, n in
                      (await self._counts(conn, expression, version)).items()
                      if store_id in scope}
            total += sum(counts.values())
            in_order = sorted(counts, key=lambda store_id: (scope[store_id][0] or 0, store_id))
            for _, tied in groupby(in_order, key=lambda store_id: scope[store_id][0] or 0):
                if len(page) == limit:
                    break
                group = list(tied)
                matching = sum(counts[store_id] for store_id in group)
                if offset >= matching:
                    offset -= matching
                    continue
                for store_id, product_id in await search_index.matching_at(
                        conn, expression, group, offset, limit - len(page)):
                    page.append((product_id, by_name, *scope[store_id]))
                offset = 0
        return total, page

def _why(row, by_name: bool, query: SearchQuery
         ) -> tuple[Literal["name", "tag", "filter"], str]:
    """What matched the customer's words (or, without words, the filter that found it),
    and the words that say so."""
    if by_name:
        return "name", f"商品名含「{query.q}」"
    tag = row["matched_tag"]
    if tag is not None:
        return "tag", f"标签「{tag}」" if tag == query.q else f"标签「{tag}」含「{query.q}」"
    if query.tag is not None:
        return "filter", f"标签「{query.tag}」"
    if query.district is not None:
        return "filter", f"在{row['district']}"
    return "filter", "在你附近"


def _ranked_by_scan(matches: dict[int, StoreMatches], text: str | None, where: Where,
                    offset: int, limit: int) -> tuple[int, list[Hit]]:
    """Every match at a store the filters keep, ranked in Python: for what the index cannot
    answer (a tag filter, words with other characters, products not yet reindexed)."""
    ranked = []
    for store, products in matches.values():
        placed = where.place(store)
        if placed is None:
            continue
        metres, open_now = placed
        for product_id, by_name in products:
            ranked.append(((not by_name, metres or 0, product_id),
                           (product_id, by_name, metres, open_now)))
    ranked.sort(key=lambda hit: hit[0])
    return len(ranked), [hit for _, hit in ranked[offset:offset + limit]]
