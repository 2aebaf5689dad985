"""Products across many stores, for the home screen's scenes and for search.  A product is
offered at the price of its cheapest SKU, the one a list of many stores' products shows."""

from __future__ import annotations

import json
from sqlite3 import Row

from .database import Connection


async def scene_offers(conn: Connection, store_ids: list[int], scenes: list[str],
                       tags: list[str], per_store: int) -> list[Row]:
    """The `per_store` cheapest products in stock of each store that carry one of `scenes`
    or `tags` (any product when both are empty), each at its cheapest SKU in stock.

    Store ids go in as one JSON array: a city has more stores open at once than SQLite
    takes parameters (named: a statement without scenes or tags leaves theirs out).  The cap
    per store is applied here, so a store with hundreds of matching products costs the
    caller `per_store` rows, not hundreds."""
    match = ""
    if scenes or tags:
        match = (" AND (EXISTS (SELECT 1 FROM product_scenes s WHERE s.product_id = p.id"
                 " AND s.scene IN (SELECT value FROM json_each(:scenes)))"
                 " OR EXISTS (SELECT 1 FROM product_tags t WHERE t.product_id = p.id"
                 " AND t.tag IN (SELECT value FROM json_each(:tags))))")
    sql = (
        "WITH offered AS (SELECT p.id AS product_id, p.name AS product_name, p.store_id,"
        " k.id AS sku_id, k.price_fen, row_number() OVER (PARTITION BY p.id"
        " ORDER BY k.price_fen, k.id) AS cheapest"
        " FROM products p JOIN skus k ON k.product_id = p.id"
        " JOIN inventory i ON i.store_id = p.store_id AND i.sku_id = k.id"
        " WHERE p.store_id IN (SELECT CAST(value AS INTEGER) FROM json_each(:stores))"
        f" AND i.on_hand > i.reserved{match}),"
        " ranked AS (SELECT *, row_number() OVER (PARTITION BY store_id"
        " ORDER BY price_fen, product_id) AS nth FROM offered WHERE cheapest = 1)"
        " SELECT product_id, product_name, store_id, sku_id, price_fen FROM ranked"
        " WHERE nth <= :per_store"
    )
    return list(await conn.execute_fetchall(
        sql, {"stores": json.dumps(store_ids), "scenes": json.dumps(scenes),
              "tags": json.dumps(tags), "per_store": per_store}))


async def matching_products(conn: Connection, *, text: str | None, tag: str | None,
                            district_code: str | None) -> list[Row]:
    """Products whose name or one of whose tags holds `text` (lower-cased by the caller;
    SQLite lowers ASCII only, which Chinese text does not need), with the given tag, in
    the district: only what ranks and filters them (whether the name matched, their store,
    where and when it is), since a broad word matches thousands and one page shows twenty
    (`offered` describes those).

    instr() rather than LIKE: no wildcard in the customer's text (a `%`) can widen it."""
    where = ["1 = 1"]
    params: dict = {"text": text, "tag": tag, "district": district_code}
    name, tag_text = _folded("p.name", text), _folded("t.tag", text)
    if text is not None:
        where.append(f"(instr({name}, :text) > 0 OR EXISTS (SELECT 1 FROM product_tags"
                     f" t WHERE t.product_id = p.id AND instr({tag_text}, :text) > 0))")
    if tag is not None:
        where.append("EXISTS (SELECT 1 FROM product_tags t WHERE t.product_id = p.id"
                     " AND t.tag = :tag)")
    if district_code is not None:
        where.append("s.district_code = :district")
    return list(await conn.execute_fetchall(
        f"SELECT p.id AS product_id, instr({name}, :text) > 0 AS name_match, p.store_id,"
        " s.lat, s.lng, s.opens_at, s.closes_at FROM products p"
        f" JOIN stores s ON s.id = p.store_id WHERE {' AND '.join(where)} ORDER BY p.id",
        params))


async def offered(conn: Connection, product_ids: list[int], text: str | None) -> list[Row]:
    """Products as a search result shows them: with their store, tags, cheapest SKU, and
    the first tag holding `text` (so the caller says why without matching again)."""
    return list(await conn.execute_fetchall(
        "WITH skus_of AS (SELECT p.id AS product_id, k.id AS sku_id, k.price_fen,"
        " row_number() OVER (PARTITION BY p.id ORDER BY k.price_fen, k.id) AS cheapest,"
        " sum(coalesce(i.on_hand - i.reserved, 0)) OVER (PARTITION BY p.id) > 0 AS in_stock"
        " FROM products p JOIN skus k ON k.product_id = p.id"
        " LEFT JOIN inventory i ON i.store_id = p.store_id AND i.sku_id = k.id"
        " WHERE p.id IN (SELECT CAST(value AS INTEGER) FROM json_each(?1)))"
        " SELECT p.id AS product_id, p.name AS product_name, p.store_id,"
        " s.name AS store_name, d.name AS district,"
        " (SELECT group_concat(tag, char(31)) FROM product_tags WHERE product_id = p.id)"
        " AS tags, (SELECT min(tag) FROM product_tags t WHERE t.product_id = p.id"
        f" AND instr({_folded('t.tag', text)}, ?2) > 0) AS matched_tag, o.sku_id, o.price_fen,"
        " o.in_stock"
        " FROM skus_of o JOIN products p ON p.id = o.product_id"
        " JOIN stores s ON s.id = p.store_id JOIN districts d ON d.code = s.district_code"
        " WHERE o.cheapest = 1",
        (json.dumps(product_ids), text)))


def _folded(column: str, text: str | None) -> str:
    """The column as a lower-cased text is matched against: lowered, unless the text has no
    letter with a case (Chinese, digits), which a name then holds exactly when its lowered
    form does.  Lowering every name and tag a search looks at was half its time on
    PostgreSQL (7.2 ms against 3.3 for a district's products)."""
    return column if text is None or text.lower() == text.upper() else f"lower({column})"
