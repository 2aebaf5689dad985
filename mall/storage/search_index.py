"""The search index (migration 0013): keeping it current, and asking it.

Its rowid is store_id * 2^32 + product_id: a search's matches are counted per store from
the index alone (no product row read), and one store's matches are a range of rowids."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .. import search_terms
from .catalogue import SEP
from .database import Connection

_SHIFT = 32
_PRODUCT_BITS = (1 << _SHIFT) - 1


def _rowid(store_id: int, product_id: int) -> int:
    return (store_id << _SHIFT) | product_id


async def reindex(conn: Connection, product_ids: list[int] | None = None,
                  batch: int | None = None) -> int:
    """Bring the index rows of noted products up to date (the given ones, or every noted one,
    at most `batch`) and forget them as noted; how many there were.  Inside a write
    transaction, so no change slips in between reading a product and indexing it."""
    sql = "SELECT product_id, store_id FROM search_stale"
    params: list = []
    if product_ids is not None:
        sql += " WHERE product_id IN (SELECT CAST(value AS INTEGER) FROM json_each(?))"
        params.append(json.dumps(product_ids))
    if batch is not None:
        sql += " LIMIT ?"
        params.append(batch)
    noted = list(await conn.execute_fetchall(sql, params))
    if not noted:
        return 0
    ids = json.dumps([row[0] for row in noted])
    current = await conn.execute_fetchall(
        "SELECT p.id, p.store_id, p.name, (SELECT group_concat(tag, char(31)) FROM product_tags"
        " WHERE product_id = p.id) AS tags FROM products p"
        " WHERE p.id IN (SELECT CAST(value AS INTEGER) FROM json_each(?))", (ids,))
    gone = [(_rowid(store_id, product_id),) for product_id, store_id in noted]
    gone += [(_rowid(row["store_id"], row["id"]),) for row in current]
    await conn.executemany("DELETE FROM product_search WHERE rowid = ?", gone)
    rows = []
    for row in current:
        tags = row["tags"].split(SEP) if row["tags"] else []
        rows.append((_rowid(row["store_id"], row["id"]),
                     search_terms.grams([row["name"]]), search_terms.grams(tags),
                     search_terms.characters([row["name"]]), search_terms.characters(tags)))
    await conn.executemany(
        "INSERT INTO product_search (rowid, name_grams, tag_grams, name_chars, tag_chars)"
        " VALUES (?, ?, ?, ?, ?)", rows)
    await conn.execute("DELETE FROM search_stale WHERE product_id IN"
                       " (SELECT CAST(value AS INTEGER) FROM json_each(?))", (ids,))
    await conn.execute("UPDATE search_index_version SET version = version + 1")
    return len(noted)


@dataclass(frozen=True)
class IndexState:
    version: int    # the index's: what a process remembers of it holds while this stands
    stale: bool     # some product waits to be reindexed
    content: int    # what searches match on (migration 0017): matches found hold while it stands


async def state(conn: Connection) -> IndexState:
    """The index's state and the city's search content, in one read."""
    rows = await conn.execute_fetchall(
        "SELECT version, EXISTS (SELECT 1 FROM search_stale), content FROM search_index_version")
    return IndexState(rows[0][0], bool(rows[0][1]), rows[0][2])


async def counts(conn: Connection, expression: str) -> dict[int, int]:
    """Products matching an FTS5 expression, per store."""
    rows = await conn.execute_fetchall(
        f"SELECT rowid >> {_SHIFT}, count(*) FROM product_search WHERE product_search MATCH ?"
        " GROUP BY 1", (expression,))
    return {store_id: n for store_id, n in rows}


async def matching_at(conn: Connection, expression: str, store_ids: list[int], offset: int,
                      limit: int) -> list[tuple[int, int]]:
    """(store id, product id) of the products matching an FTS5 expression at these stores,
    by product id, from `offset` on."""
    if len(store_ids) == 1:   # one store's rows are a range the index seeks to
        where = "rowid BETWEEN ? AND ?"
        params: tuple = (_rowid(store_ids[0], 0), _rowid(store_ids[0], _PRODUCT_BITS))
    else:
        where = f"rowid >> {_SHIFT} IN (SELECT CAST(value AS INTEGER) FROM json_each(?))"
        params = (json.dumps(store_ids),)
    rows = await conn.execute_fetchall(
        f"SELECT rowid >> {_SHIFT}, rowid & {_PRODUCT_BITS} AS product_id FROM product_search"
        f" WHERE product_search MATCH ? AND {where} ORDER BY product_id LIMIT ? OFFSET ?",
        (expression, *params, limit, offset))
    return [(row[0], row[1]) for row in rows]
