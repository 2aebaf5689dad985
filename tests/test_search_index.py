"""Search through the index answers exactly what the scan it replaced answered: on a
generated city, for the load's words and for pieces of real names and tags (one to four
characters, ASCII in either case, words the index cannot hold), with every filter and over
several pages; and it stays exact while products another writer changed wait for the
sweeper."""

from __future__ import annotations

import asyncio
import random
import sqlite3

import pytest

from mall import search_terms
from shared.clock import Clock
from simulator import tables
from simulator.city import build_city
from simulator.loader import load

from .conftest import open_shop

FRIDAY_22 = "2026-11-27T22:00+08:00"


@pytest.fixture
async def city(tmp_path, start_mall):
    """The small preset city, Friday 22:00 (some stores closed), and a shop whose names and
    tags try the index's edges: ASCII in both cases, separators, pieces that would run
    across a space or from one tag into the next."""
    path = tmp_path / "city.db"
    await load(build_city(tables.presets()["small"], 7, customers=500), path)
    mall = await start_mall(db_path=path, clock=Clock.parse(FRIDAY_22))
    shop = await open_shop(mall, merchant_openid="edge-merchant", name="边界测试店")
    for name, tags in (("DIY 手工奶茶", ["饮品", "奶茶"]), ("ab bc 组合", ["家庭", "庭装"]),
                       ("奶茶（大杯）·冰", ["冰饮"]), ("Cola可乐 500ml", ["Drink", "可乐"])):
        made = await mall.api.post(f"/api/v1/merchant/stores/{shop.store_id}/products",
                                   token=shop.merchant,
                                   json={"name": name, "price_fen": 900, "tags": tags})
        assert made.status == 201, made.body
    return mall, path


def words_of(path, seed: int = 3, count: int = 40) -> list[str]:
    """The load's words, then pieces of the city's own names and tags."""
    with sqlite3.connect(path) as conn:
        texts = [row[0] for row in conn.execute("SELECT name FROM products UNION ALL"
                                                " SELECT tag FROM product_tags")]
    rng = random.Random(seed)
    words = [*tables.search_words(), "diy", "DIY", "Cola", "500ml", "abc", "庭装", "家庭装",
             "bc组", "奶茶（", "茶 ", "a", "火锅", "(", "可乐 5"]
    while len(words) < len(tables.search_words()) + 14 + count:
        text = rng.choice(texts)
        start = rng.randrange(len(text))
        words.append(text[start:start + rng.randint(1, 4)])
    return words


def searches(words: list[str]) -> list[dict]:
    """Each word alone, near a point within a radius, open only, closed only, in a
    district, and near a point without a radius."""
    near = {"lat": 28.1960, "lng": 112.9770}
    filters = [{}, {**near, "radius_m": 3000, "open_now": "true"}, {"open_now": "false"},
               {"district": "天心区"}, {**near}, {**near, "radius_m": 800}]
    return [{"q": word, **extra, "limit": 7} for word in words for extra in filters]


async def answers(mall, queries: list[dict], pages: int = 3) -> list[list[dict]]:
    """Up to `pages` pages of each search, following next_cursor."""
    found = []
    for query in queries:
        chain, params = [], dict(query)
        for _ in range(pages):
            reply = await mall.api.get("/api/v1/search", params=params)
            assert reply.status == 200, (query, reply.body)
            chain.append(reply.body)
            if reply.body["next_cursor"] is None:
                break
            params["cursor"] = reply.body["next_cursor"]
        found.append(chain)
    return found


async def foreign_write(mall, sql: str, product_id: int) -> None:
    """A write by another writer that knows nothing of the index (an older build sharing the
    database): only the triggers' note tells the mall."""
    async def write(conn):
        await conn.execute(sql, (product_id,))
    await mall.services.db.transaction(write)


async def test_index_and_scan_give_the_same_answers(city):
    mall, path = city
    queries = searches(words_of(path))
    via = 'mall_searches_total{{result="{}",via="{}"}}'

    async def counted() -> dict:
        return {(r, v): await mall.api.metric(via.format(r, v))
                for r in ("hits", "none") for v in ("index", "scan")}

    before = await counted()
    indexed = await answers(mall, queries)
    used = {key: n - before[key] for key, n in (await counted()).items()}
    # Most searches went through the index (finding things or not); the few words it cannot
    # hold were scanned.
    through_index = used["hits", "index"] + used["none", "index"]
    assert used["hits", "index"] > 0 and used["none", "index"] > 0
    assert 0 < used["hits", "scan"] + used["none", "scan"] < 0.2 * through_index

    # A product noted stale (its name written again, unchanged): every search scans until the
    # sweeper has reindexed it.  Keep the sweeper away meanwhile, so the scan is what answers.
    mall.services.config.expiry_sweep_interval = 3600
    await asyncio.sleep(0.3)   # the sweep under way ends, the next is an hour away
    with sqlite3.connect(path) as conn:
        product_id = conn.execute("SELECT min(id) FROM products").fetchone()[0]
    await foreign_write(mall, "UPDATE products SET name = name WHERE id = ?", product_id)
    before = await counted()
    scanned = await answers(mall, queries)
    after = await counted()
    assert sum(after[r, "scan"] - before[r, "scan"] for r in ("hits", "none")) \
        == sum(used.values())
    assert await mall.services.discovery.reindex_stale() == 1
    assert await answers(mall, queries) == scanned == indexed

    # A tag another writer adds is found at once (by a scan), and through the index once
    # the sweeper has caught up (what the mall remembered of the index before is dropped).
    assert (await mall.api.get("/api/v1/search", params={"q": "星城"})).body["total"] == 0
    await foreign_write(mall, "INSERT INTO product_tags (product_id, tag) VALUES (?, '星城')",
                        product_id)
    for via_now in ("scan", "index"):
        reply = await mall.api.get("/api/v1/search", params={"q": "星城"})
        assert [item["product_id"] for item in reply.body["items"]] == [product_id]
        assert await mall.api.metric(via.format("hits", via_now)) > 0
        assert await mall.services.discovery.reindex_stale() == (via_now == "scan")


def test_texts_are_cut_into_pairs_within_segments():
    assert search_terms.grams(["臭豆腐"]) == "臭豆 豆腐"
    assert search_terms.grams(["DIY 手工奶茶"]) == "di iy zzz 手工 工奶 奶茶"
    assert search_terms.grams(["冰饮", "可乐"]) == "冰饮 zzz 可乐"
    assert search_terms.characters(["奶茶（大杯）"]) == "大 奶 杯 茶"
    assert search_terms.indexable("奶茶") and search_terms.indexable("500ml")
    assert not search_terms.indexable("奶茶（") and not search_terms.indexable("")
    query = search_terms.index_query("家庭装")
    assert query.by_name == '{name_grams} : "家庭 庭装"'
    assert query.by_tag_only == '{tag_grams} : "家庭 庭装" NOT {name_grams} : "家庭 庭装"'
    assert search_terms.index_query("粉").by_name == '{name_chars} : "粉"'
