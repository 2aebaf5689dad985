"""Scene recommendations (首页场景推荐) on the mall clock, and search across stores: every
scene, every rule that keeps a product out, the ranking, every filter and every misuse."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from mall.geo import distance_km
from mall.scenes import ScenesError, load_scenes
from mall.services.discovery import distance_text
from shared.clock import SHANGHAI

from .conftest import WULI, Clock, Mall, Shop, open_shop
from .data_files import refusal

FRIDAY_22 = "2026-11-27T22:00+08:00"
WEDNESDAY = "2026-11-25"
SATURDAY = "2026-11-28"
NEAR = (28.1950, 112.9790)      # ~230 m from 五一广场
NEXT_DOOR = (28.1958, 112.9772)  # ~30 m
MID = (28.1920, 112.9850)       # ~930 m
FAR = (28.1960, 112.8960)       # 梅溪湖 side, ~8 km


async def stocked(mall: Mall, shop: Shop, name: str, price_fen: int, tags=(), scenes=(),
                  stock: int = 5) -> int:
    """A product of the shop's with `stock` units on hand; its product id."""
    api = mall.api
    made = await api.post(f"/api/v1/merchant/stores/{shop.store_id}/products",
                          token=shop.merchant, json={"name": name, "price_fen": price_fen,
                                                     "tags": list(tags),
                                                     "scenes": list(scenes)})
    assert made.status == 201, made.body
    level = await api.put(f"/api/v1/merchant/stores/{shop.store_id}/inventory/"
                          f"{made.body['sku_id']}", token=shop.merchant, json={"stock": stock})
    assert level.status == 200, level.body
    return made.body["product_id"]


def metres(lat: float, lng: float) -> int:
    return round(distance_km(*WULI, lat, lng) * 1000)


def picked(reply) -> list[tuple[str, int]]:
    return [(item["product_name"], item["store_id"]) for item in reply.body["items"]]


@pytest.fixture
async def late_city(start_mall):
    """Friday 22:00: a 夜宵 street with one stall closed, one across town."""
    mall = await start_mall(clock=Clock.parse(FRIDAY_22))
    near = await open_shop(mall, merchant_openid="m1", name="黄兴路烧烤", lat=NEAR[0],
                           lng=NEAR[1], hours=("18:00", "03:00"))
    closed = await open_shop(mall, merchant_openid="m2", name="解放西路奶茶",
                             lat=NEXT_DOOR[0], lng=NEXT_DOOR[1], hours=("10:00", "22:00"))
    mid = await open_shop(mall, merchant_openid="m3", name="南门口卤味", lat=MID[0],
                          lng=MID[1])
    far = await open_shop(mall, merchant_openid="m4", name="梅溪湖夜宵", district="岳麓区",
                          lat=FAR[0], lng=FAR[1])
    await stocked(mall, near, "烤串拼盘", 1000, ["夜宵", "烧烤"], ["late_night"])
    await stocked(mall, near, "嗦螺", 3800, ["夜宵"], ["late_night"])            # 3rd: capped
    await stocked(mall, near, "蒜蓉小龙虾", 500, ["夜宵"], ["late_night"], stock=0)  # sold out
    await stocked(mall, near, "矿泉水", 200)                                      # no scene
    await stocked(mall, closed, "夜宵套餐", 900, ["套餐"], ["late_night"])
    return mall, near, closed, mid, far


async def test_late_night_recommends_open_stalls_nearest_first(late_city):
    mall, near, _, mid, _ = late_city
    reply = await mall.api.get("/api/v1/recommendations", params={"lat": WULI[0],
                                                                  "lng": WULI[1]})
    assert reply.status == 200, reply.body
    body = reply.body
    assert (body["scene"], body["scene_title"], body["located"]) == ("late_night", "夜宵", True)
    assert body["at"].startswith("2026-11-27T22:0") and body["at"].endswith("+08:00")
    # Nearest store first, its two cheapest 夜宵 in stock; the closed stall next door, the
    # sold-out crayfish, the water and the store 8 km away never appear.
    assert picked(reply) == [("烤串拼盘", near.store_id), ("口味虾 中份", near.store_id),
                             ("口味虾 中份", mid.store_id)]
    first = body["items"][0]
    assert first["distance_m"] == metres(*NEAR) and first["open_now"] is True
    assert first["price_fen"] == 1000 and first["store_name"] == "黄兴路烧烤"
    assert first["reason"] == f"22:00 还在营业的夜宵，离你 {distance_text(metres(*NEAR))}"
    assert body["items"][2]["reason"].endswith(distance_text(metres(*MID)))
    assert "米" in first["reason"] and "{" not in first["reason"]


async def test_the_cheapest_arm_ranks_by_price_across_the_stores_in_reach(late_city):
    """The `recommendation_strategy` experiment's second arm: the same offers in reach,
    lowest price first; the nearby arm (the default) keeps the nearest store first."""
    mall, near, _, mid, _ = late_city
    await stocked(mall, mid, "卤藕", 300, ["夜宵"], ["late_night"])
    where = {"lat": WULI[0], "lng": WULI[1]}
    nearby = await mall.api.get("/api/v1/recommendations", params=where)
    cheapest = await mall.api.get("/api/v1/recommendations",
                                  params=where | {"strategy": "cheapest"})
    assert picked(nearby) == [("烤串拼盘", near.store_id), ("口味虾 中份", near.store_id),
                              ("卤藕", mid.store_id), ("口味虾 中份", mid.store_id)]
    assert picked(cheapest) == [("卤藕", mid.store_id), ("烤串拼盘", near.store_id),
                                ("口味虾 中份", near.store_id), ("口味虾 中份", mid.store_id)]
    assert [i["price_fen"] for i in cheapest.body["items"]] == [300, 1000, 1800, 1800]
    wrong = await mall.api.get("/api/v1/recommendations", params=where | {"strategy": "hot"})
    assert wrong.status == 400 and wrong.error["field"] == "strategy"


async def test_late_night_without_a_point_says_so_and_goes_city_wide(late_city):
    mall, near, closed, mid, far = late_city
    reply = await mall.api.get("/api/v1/recommendations")
    assert reply.status == 200, reply.body
    assert reply.body["located"] is False and reply.body["scene"] == "late_night"
    # Cheapest first, then by product; still never the closed stall.
    assert picked(reply) == [("烤串拼盘", near.store_id), ("口味虾 中份", near.store_id),
                             ("口味虾 中份", mid.store_id), ("口味虾 中份", far.store_id)]
    for item in reply.body["items"]:
        assert item["distance_m"] is None
        assert item["reason"] == "22:00 还在营业的夜宵（没有你的位置，按全城价格从低到高）"
        assert item["store_id"] != closed.store_id


async def test_a_point_far_from_every_store_gets_an_empty_list_not_an_error(late_city):
    mall = late_city[0]
    reply = await mall.api.get("/api/v1/recommendations", params={"lat": 28.40,
                                                                  "lng": 113.30})
    assert reply.status == 200 and reply.body["items"] == []


async def test_after_school_on_a_school_day_prefers_saying_the_school(start_mall):
    mall = await start_mall(clock=Clock.parse(f"{WEDNESDAY}T17:00+08:00"))
    school = await open_shop(mall, merchant_openid="m1", name="长郡文具零食", lat=NEAR[0],
                             lng=NEAR[1], circle="长郡中学一带")
    other = await open_shop(mall, merchant_openid="m2", name="南门口小吃", lat=MID[0],
                            lng=MID[1])
    await stocked(mall, school, "糖油粑粑", 600, ["小吃"], ["after_school"])
    await stocked(mall, other, "儿童套餐", 1800, ["放学"], [])    # by tag alone
    reply = await mall.api.get("/api/v1/recommendations", params={"lat": WULI[0],
                                                                  "lng": WULI[1]})
    assert reply.status == 200, reply.body
    assert (reply.body["scene"], reply.body["scene_title"]) == ("after_school", "放学加餐")
    # The 口味虾 each shop opened with is late_night only: not for after school.
    assert picked(reply) == [("糖油粑粑", school.store_id), ("儿童套餐", other.store_id)]
    first, second = reply.body["items"]
    assert first["reason"] == ("放学时间，长郡中学一带的小朋友零食，离你 "
                               f"{distance_text(metres(*NEAR))}")
    assert second["reason"] == f"放学时间的小朋友零食，南门口小吃离你 {distance_text(metres(*MID))}"


async def test_weekend_daytime_recommends_family_packs(start_mall):
    mall = await start_mall(clock=Clock.parse(f"{SATURDAY}T11:00+08:00"))
    shop = await open_shop(mall, lat=NEAR[0], lng=NEAR[1])
    pack = await stocked(mall, shop, "家庭装 米粉", 4800, ["家庭装"], ["family"])
    await stocked(mall, shop, "儿童套餐", 1800, ["放学"], ["after_school"])
    reply = await mall.api.get("/api/v1/recommendations", params={"lat": WULI[0],
                                                                  "lng": WULI[1]})
    assert reply.status == 200, reply.body
    assert (reply.body["scene"], reply.body["scene_title"]) == ("weekend_family", "周末家庭装")
    assert [item["product_id"] for item in reply.body["items"]] == [pack]
    assert reply.body["items"][0]["reason"] == (
        f"周末全家一起吃，坡子街口味虾的家庭装，离你 {distance_text(metres(*NEAR))}")


async def test_a_weekday_morning_is_everyday_one_product_a_store(start_mall):
    mall = await start_mall(clock=Clock.parse(f"{WEDNESDAY}T10:00+08:00"))
    shop = await open_shop(mall, lat=NEAR[0], lng=NEAR[1])
    cheap = await stocked(mall, shop, "矿泉水", 200)
    night = await open_shop(mall, merchant_openid="m2", name="夜猫子烧烤", lat=MID[0],
                            lng=MID[1], hours=("18:00", "03:00"))
    reply = await mall.api.get("/api/v1/recommendations", params={"lat": WULI[0],
                                                                  "lng": WULI[1]})
    assert reply.status == 200, reply.body
    assert (reply.body["scene"], reply.body["scene_title"]) == ("everyday", "附近好物")
    assert [item["product_id"] for item in reply.body["items"]] == [cheap]
    assert all(item["store_id"] != night.store_id for item in reply.body["items"])
    assert reply.body["items"][0]["reason"] == (
        f"坡子街口味虾 正在营业，离你 {distance_text(metres(*NEAR))}")


@pytest.mark.parametrize(("moment", "scene"), [
    ("2026-11-27T21:00", "late_night"), ("2026-11-27T20:59", "everyday"),
    ("2026-11-28T01:59", "late_night"), ("2026-11-28T02:00", "everyday"),
    ("2026-11-28T09:59", "everyday"),
    ("2026-11-28T10:00", "weekend_family"), ("2026-11-29T19:59", "weekend_family"),
    ("2026-11-29T20:00", "everyday"), ("2026-11-29T23:30", "late_night"),
    ("2026-11-23T16:00", "after_school"), ("2026-11-27T18:29", "after_school"),
    ("2026-11-27T18:30", "everyday"), ("2026-11-23T15:59", "everyday"),
    ("2026-11-28T17:00", "weekend_family"), ("2026-11-25T10:00", "everyday"),
])
def test_the_shipped_scene_windows(moment, scene):
    at = datetime.fromisoformat(moment).replace(tzinfo=SHANGHAI)
    assert load_scenes().at(at).key == scene


def test_distances_read_as_a_customer_reads_them():
    assert [distance_text(m) for m in (3, 604, 999, 1000, 1260)] == [
        "10 米", "600 米", "1.0 公里", "1.0 公里", "1.3 公里"]


_SCENE = '''
[[scene]]
key = "everyday"
title = "附近好物"
radius_m = 3000
reason = "{store}"
reason_far = "{store}"
'''


@pytest.mark.parametrize(("text", "complaint"), [
    (_SCENE.replace('reason = "{store}"', 'reason = "{shop}"'), "unknown placeholders"),
    (_SCENE + _SCENE, "two scenes share a key"),
    ('[[scene]]\nkey = "x"\ntitle = "x"\nradius_m = 1\nreason = "a"\nreason_far = "a"\n',
     "scene.0.radius_m"),
    (_SCENE.replace('title = "附近好物"', 'title = "附近好物"\ndays = ["mon"]'),
     "days, from and until go together"),
    (_SCENE.replace('title = "附近好物"',
                    'title = "附近好物"\ndays = ["mon"]\nfrom = "09:00"\nuntil = "10:00"'),
     "the last scene, and only it"),
    (_SCENE.replace('title = "附近好物"', 'title = "附近好物"\ndays = ["monday"]\n'
                    'from = "09:00"\nuntil = "10:00"') + _SCENE.replace("everyday", "other"),
     "scene.0.days.0"),
    ("scene = []", "scene"),
])
def test_a_bad_scenes_file_is_refused_naming_what_is_wrong(tmp_path, text, complaint):
    assert re.search(complaint, refusal(tmp_path, "scenes.toml", text, load_scenes,
                                        ScenesError))


@pytest.mark.parametrize(("params", "field"), [
    ({"lat": WULI[0]}, "lng"), ({"lng": WULI[1]}, "lat"), ({"lat": "北", "lng": WULI[1]}, "lat"),
    ({"lat": 91, "lng": WULI[1]}, "lat"), ({"lat": WULI[0], "lng": -181}, "lng"),
    ({"lat": "nan", "lng": WULI[1]}, "lat"), ({"city": "长沙"}, "city"),
])
async def test_recommendations_misuse_is_a_400_naming_the_field(mall, params, field):
    reply = await mall.api.get("/api/v1/recommendations", params=params)
    assert reply.status == 400, reply.body
    assert reply.error["field"] == field


@pytest.fixture
async def market(start_mall):
    """Friday 22:00: 夜宵 by name and by tag, near and across town, one stall closed."""
    mall = await start_mall(clock=Clock.parse(FRIDAY_22))
    near = await open_shop(mall, merchant_openid="m1", name="黄兴路烧烤", lat=NEAR[0],
                           lng=NEAR[1], hours=("18:00", "03:00"))
    mid = await open_shop(mall, merchant_openid="m2", name="解放西路奶茶", lat=MID[0],
                          lng=MID[1], hours=("10:00", "22:00"))
    far = await open_shop(mall, merchant_openid="m3", name="梅溪湖夜宵", district="岳麓区",
                          lat=FAR[0], lng=FAR[1])
    ids = {"near_shrimp": near.product_id, "mid_shrimp": mid.product_id,
           "far_shrimp": far.product_id,
           "far_set": await stocked(mall, far, "夜宵套餐", 3800, ["套餐"]),
           "near_set": await stocked(mall, near, "夜宵拼盘", 4800, ["烧烤"]),
           "milk_tea": await stocked(mall, mid, "珍珠奶茶", 1200, ["奶茶", "夜宵饮品"]),
           "water": await stocked(mall, near, "矿泉水", 200, stock=0)}
    return mall, ids, near, mid, far


async def search(mall: Mall, **params):
    return await mall.api.get("/api/v1/search", params=params)


def ids_of(reply) -> list[int]:
    return [item["product_id"] for item in reply.body["items"]]


async def test_search_ranks_name_matches_above_tag_matches(market):
    mall, ids, *_ = market
    reply = await search(mall, q="夜宵")
    assert reply.status == 200, reply.body
    # Name matches (by product id without a point), then tag matches: the exact tag 夜宵
    # on each 口味虾, and 夜宵饮品 holding the word.
    assert ids_of(reply) == [ids["far_set"], ids["near_set"], ids["near_shrimp"],
                             ids["mid_shrimp"], ids["far_shrimp"], ids["milk_tea"]]
    assert reply.body["total"] == 6 and reply.body["next_cursor"] is None
    items = {item["product_id"]: item for item in reply.body["items"]}
    assert items[ids["far_set"]]["matched_on"] == "name"
    assert items[ids["far_set"]]["reason"] == "商品名含「夜宵」"
    assert items[ids["near_shrimp"]]["matched_on"] == "tag"
    assert items[ids["near_shrimp"]]["reason"] == "标签「夜宵」"
    assert items[ids["milk_tea"]]["reason"] == "标签「夜宵饮品」含「夜宵」"
    assert items[ids["far_set"]]["district"] == "岳麓区"
    assert items[ids["far_set"]]["distance_m"] is None
    tea = items[ids["milk_tea"]]
    assert (tea["store_name"], tea["price_fen"], tea["tags"]) == ("解放西路奶茶", 1200,
                                                                  ["夜宵饮品", "奶茶"])
    assert tea["open_now"] is False and tea["in_stock"] is True


async def test_a_words_matches_kept_by_the_mall_follow_every_change_search_sees(market):
    """The mall keeps a word's matches between searches (they do not move with stock); a
    tag, a name or a store's hours written by another writer, which knows nothing of what
    the mall keeps, and a product added through the API, each show in the next search."""
    mall, ids, near, *_ = market

    async def found(**params) -> list[int]:
        reply = await search(mall, q="夜宵", **params)
        assert reply.status == 200, reply.body
        return ids_of(reply)

    async def foreign_write(sql: str, *params) -> None:
        async def write(conn):
            await conn.execute(sql, params)
        await mall.services.db.transaction(write)

    first = await found()
    open_first = await found(open_now="true")
    assert ids["near_set"] in open_first and ids["water"] not in first
    await found()   # kept: the same answer, whatever the stock does meanwhile
    await foreign_write("INSERT INTO product_tags (product_id, tag) VALUES (?, ?)",
                        ids["water"], "夜宵")
    assert ids["water"] in await found()
    await foreign_write("UPDATE products SET name = ? WHERE id = ?", "烧烤拼盘", ids["near_set"])
    assert ids["near_set"] not in await found()
    await foreign_write("UPDATE stores SET closes_at = ? WHERE id = ?", "21:00", near.store_id)
    assert not {ids["near_shrimp"], ids["water"]} & set(await found(open_now="true"))
    added = await stocked(mall, near, "夜宵烤串", 1500)
    assert added in await found()


async def test_search_with_a_point_ranks_by_distance_within_each_kind_of_match(market):
    mall, ids, *_ = market
    reply = await search(mall, q="夜宵", lat=WULI[0], lng=WULI[1])
    assert ids_of(reply) == [ids["near_set"], ids["far_set"], ids["near_shrimp"],
                             ids["mid_shrimp"], ids["milk_tea"], ids["far_shrimp"]]
    first = reply.body["items"][0]
    assert first["distance_m"] == metres(*NEAR)
    assert first["reason"] == f"商品名含「夜宵」，离你 {distance_text(metres(*NEAR))}"


async def test_search_filters(market):
    mall, ids, *_ = market
    point = {"lat": WULI[0], "lng": WULI[1]}
    assert ids_of(await search(mall, q="夜宵", district="岳麓区")) == [ids["far_set"],
                                                                    ids["far_shrimp"]]
    assert ids_of(await search(mall, q="夜宵", district="430104")) == [ids["far_set"],
                                                                    ids["far_shrimp"]]
    by_tag = await search(mall, tag="烧烤")
    assert ids_of(by_tag) == [ids["near_set"]]
    assert by_tag.body["items"][0]["matched_on"] == "filter"
    assert by_tag.body["items"][0]["reason"] == "标签「烧烤」"
    # A tag filter is exact; q matches inside tags.
    assert ids_of(await search(mall, tag="夜宵饮")) == []
    assert ids_of(await search(mall, q="夜宵", tag="奶茶")) == [ids["milk_tea"]]
    in_district = await search(mall, district="岳麓区")
    assert in_district.body["items"][0]["reason"] == "在岳麓区"
    assert ids_of(await search(mall, q="夜宵", open_now="true")) == [
        ids["far_set"], ids["near_set"], ids["near_shrimp"], ids["far_shrimp"]]
    assert ids_of(await search(mall, q="夜宵", open_now="false")) == [ids["mid_shrimp"],
                                                                     ids["milk_tea"]]
    within = await search(mall, q="夜宵", radius_m=1000, **point)
    assert ids_of(within) == [ids["near_set"], ids["near_shrimp"], ids["mid_shrimp"],
                              ids["milk_tea"]]
    nearby = await search(mall, radius_m=500, **point)
    assert ids_of(nearby) == [ids["near_shrimp"], ids["near_set"], ids["water"]]
    assert nearby.body["items"][0]["reason"].startswith("在你附近，离你 ")
    water = nearby.body["items"][2]
    assert water["in_stock"] is False and water["price_fen"] == 200
    # Words match case-insensitively, and a wildcard is only a character.
    assert ids_of(await search(mall, q="%")) == []
    assert ids_of(await search(mall, q="_")) == []


async def test_search_pages_follow_the_ranking(market):
    mall = market[0]
    whole = ids_of(await search(mall, q="夜宵", lat=WULI[0], lng=WULI[1]))
    seen, cursor = [], None
    while True:
        params = {"q": "夜宵", "lat": WULI[0], "lng": WULI[1], "limit": 4}
        page = await search(mall, **params | ({"cursor": cursor} if cursor else {}))
        assert page.status == 200 and page.body["total"] == len(whole)
        seen += ids_of(page)
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
    assert seen == whole and len(seen) == 6


async def test_search_counts_what_it_found(market):
    mall = market[0]
    via = "index" if mall.services.db.engine == "sqlite" else "scan"   # docs/scale.md
    none = f'mall_searches_total{{result="none",via="{via}"}}'
    before = await mall.api.metric(none)
    await search(mall, q="火锅")
    assert await mall.api.metric(none) == before + 1
    await mall.api.get("/api/v1/recommendations")
    assert await mall.api.metric('mall_recommendations_total{scene="late_night"}') == 1


@pytest.mark.parametrize(("params", "code", "field"), [
    ({}, "empty_search", "q"),
    ({"q": "   "}, "empty_search", "q"),
    ({"q": ""}, "empty_search", "q"),
    ({"open_now": "true"}, "empty_search", "q"),
    ({"lat": WULI[0], "lng": WULI[1]}, "empty_search", "q"),
    ({"q": "虾" * 31}, "invalid_field", "q"),
    ({"q": "虾", "district": "火星区"}, "unknown_district", "district"),
    ({"q": "虾", "district": ""}, "invalid_field", "district"),
    ({"q": "虾", "tag": "a,b"}, "invalid_field", "tag"),
    ({"q": "虾", "open_now": "maybe"}, "invalid_field", "open_now"),
    ({"q": "虾", "radius_m": 500}, "missing_point", "radius_m"),
    ({"q": "虾", "radius_m": 0, "lat": WULI[0], "lng": WULI[1]}, "invalid_field", "radius_m"),
    ({"q": "虾", "radius_m": 50_001, "lat": WULI[0], "lng": WULI[1]}, "invalid_field",
     "radius_m"),
    ({"q": "虾", "radius_m": "far", "lat": WULI[0], "lng": WULI[1]}, "invalid_field",
     "radius_m"),
    ({"q": "虾", "lat": WULI[0]}, "invalid_field", "lng"),
    ({"q": "虾", "lng": WULI[1]}, "invalid_field", "lat"),
    ({"q": "虾", "lat": "inf", "lng": WULI[1]}, "invalid_field", "lat"),
    ({"q": "虾", "limit": 0}, "invalid_field", "limit"),
    ({"q": "虾", "limit": 51}, "invalid_field", "limit"),
    ({"q": "虾", "cursor": "not-a-cursor"}, "invalid_cursor", "cursor"),
    ({"q": "虾", "cursor": "x" * 65}, "invalid_field", "cursor"),
    ({"q": "虾", "sort": "price"}, "invalid_field", "sort"),
])
async def test_search_misuse_is_a_400_naming_the_field(mall, params, code, field):
    reply = await search(mall, **params)
    assert reply.status == 400, reply.body
    assert (reply.error["code"], reply.error["field"]) == (code, field)


async def test_the_openapi_document_describes_both_routes(mall):
    doc = (await mall.api.get("/api/v1/openapi.json")).body
    recommend = doc["paths"]["/api/v1/recommendations"]["get"]
    assert {p["name"] for p in recommend["parameters"]} == {"lat", "lng", "strategy"}
    find = doc["paths"]["/api/v1/search"]["get"]
    assert {p["name"] for p in find["parameters"]} == {
        "q", "tag", "district", "open_now", "lat", "lng", "radius_m", "cursor", "limit"}
    assert "security" not in recommend and "security" not in find
    for operation, model in ((recommend, "RecommendationsOut"), (find, "SearchOut")):
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith(model)
