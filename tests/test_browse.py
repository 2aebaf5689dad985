"""Browsing: stores by distance and district on the mall clock, catalogue filters, cursors."""

from __future__ import annotations

from mall.geo import distance_km

from .conftest import WULI, Clock, open_shop


async def test_nearby_stores_sorted_by_distance(start_mall):
    mall = await start_mall(clock=Clock.parse("2026-11-27T23:00+08:00"))
    near = await open_shop(mall, merchant_openid="m1", name="黄兴路烧烤",
                           lat=28.1950, lng=112.9790, hours=("18:00", "03:00"))
    mid = await open_shop(mall, merchant_openid="m2", name="解放西路奶茶",
                          lat=28.1920, lng=112.9850, hours=("10:00", "22:00"))
    far = await open_shop(mall, merchant_openid="m3", name="梅溪湖面包", district="岳麓区",
                          lat=28.1960, lng=112.8960)
    api = mall.api
    nearby = await api.get("/api/v1/stores", params={"lat": WULI[0], "lng": WULI[1],
                                                     "radius_km": 3})
    ids = [s["id"] for s in nearby.body["items"]]
    assert ids == [near.store_id, mid.store_id]
    first = nearby.body["items"][0]
    assert abs(first["distance_km"] - distance_km(*WULI, 28.1950, 112.9790)) < 0.001
    assert [s["open_now"] for s in nearby.body["items"]] == [True, False]
    wide = await api.get("/api/v1/stores", params={"lat": WULI[0], "lng": WULI[1],
                                                   "radius_km": 20})
    assert [s["id"] for s in wide.body["items"]] == [near.store_id, mid.store_id, far.store_id]
    open_only = await api.get("/api/v1/stores", params={"lat": WULI[0], "lng": WULI[1],
                                                        "radius_km": 20, "open_now": "true"})
    assert [s["id"] for s in open_only.body["items"]] == [near.store_id, far.store_id]
    by_district = await api.get("/api/v1/stores", params={"district": "岳麓区"})
    assert [s["id"] for s in by_district.body["items"]] == [far.store_id]
    assert by_district.body["items"][0]["district"] == "岳麓区"
    # Pages of one, followed by cursor, give the same order.
    seen, cursor = [], None
    while True:
        params = {"lat": WULI[0], "lng": WULI[1], "radius_km": 20, "limit": 1}
        page = await api.get("/api/v1/stores", params=params | ({"cursor": cursor}
                                                                if cursor else {}))
        seen += [s["id"] for s in page.body["items"]]
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
    assert seen == [near.store_id, mid.store_id, far.store_id]


async def test_catalogue_filters_and_pages(mall, shop):
    api = mall.api
    path = f"/api/v1/merchant/stores/{shop.store_id}/products"
    for name, tags, scenes in [("糖油粑粑", ["放学"], ["after_school"]),
                               ("家庭装 米粉", ["家庭装"], ["family"]),
                               ("校园 奶茶", ["校园", "放学"], ["campus"])]:
        made = await api.post(path, token=shop.merchant,
                              json={"name": name, "price_fen": 600, "tags": tags,
                                    "scenes": scenes})
        assert made.status == 201
    catalogue = f"/api/v1/stores/{shop.store_id}/products"
    names = lambda reply: [p["name"] for p in reply.body["items"]]  # noqa: E731
    assert names(await api.get(catalogue, params={"tag": "放学"})) == ["糖油粑粑", "校园 奶茶"]
    assert names(await api.get(catalogue, params={"scene": "family"})) == ["家庭装 米粉"]
    assert names(await api.get(catalogue, params={"q": "奶茶"})) == ["校园 奶茶"]
    assert names(await api.get(catalogue, params={"q": "%"})) == []
    first = await api.get(catalogue, params={"limit": 2})
    assert names(first) == ["口味虾 中份", "糖油粑粑"]
    rest = await api.get(catalogue, params={"limit": 2, "cursor": first.body["next_cursor"]})
    assert names(rest) == ["家庭装 米粉", "校园 奶茶"]
    product = first.body["items"][0]
    assert product["tags"] == ["夜宵"] and product["scenes"] == ["late_night"]
    assert product["skus"][0] == {"sku_id": shop.sku_id, "spec": "标准",
                                  "price_fen": shop.price_fen, "available": 10,
                                  "stock_state": "in_stock", "member_price_fen": None,
                                  "member_level": None}
    detail = await api.get(f"{catalogue}/{first.body['items'][1]['product_id']}")
    assert detail.body["skus"][0]["stock_state"] == "sold_out"


async def test_catalogue_pages_follow_every_stock_change(mall, shop):
    """Pages are kept while the store's products stand, and show every change of its stock
    at once: an order reads no page afresh, a new product or price does."""
    api = mall.api
    catalogue = f"/api/v1/stores/{shop.store_id}/products"
    product = f"/api/v1/stores/{shop.store_id}/products/{shop.product_id}"

    async def served(source: str) -> float:
        return await api.metric(f'mall_catalogue_pages_total{{source="{source}"}}')

    async def available() -> list[int]:
        page = await api.get(catalogue)
        return [k["available"] for p in page.body["items"] for k in p["skus"]]

    async def shown(expected: list[int], source: str) -> None:
        before = await served(source)
        assert await available() == expected
        assert await served(source) == before + 1, f"the page was not {source}"

    await shown([10], "read")
    await shown([10], "kept")
    customer = await api.login("shopper")
    order = await api.post("/api/v1/orders", token=customer, json={
        "store_id": shop.store_id, "lines": [{"sku_id": shop.sku_id, "qty": 3}],
        "fulfilment": "pickup"})
    await shown([7], "kept")
    first = await api.get(product)
    assert [k["available"] for k in first.body["skus"]] == [7], first.body
    await api.post(f"/api/v1/orders/{order.body['order_id']}/cancel", token=customer)
    await shown([10], "kept")
    again = await api.get(product)
    assert (again.body["skus"][0]["available"], again.body["skus"][0]["stock_state"]) == \
        (10, "in_stock"), again.body
    await api.put(f"/api/v1/merchant/stores/{shop.store_id}/inventory/{shop.sku_id}",
                  token=shop.merchant, json={"stock": 4})
    await shown([4], "kept")
    await api.put(f"/api/v1/merchant/stores/{shop.store_id}/inventory/{shop.sku_id}",
                  token=shop.merchant, json={"stock": 0})
    await shown([0], "kept")
    await api.put(f"/api/v1/merchant/stores/{shop.store_id}/inventory/{shop.sku_id}",
                  token=shop.merchant, json={"stock": 4})
    await api.post(f"/api/v1/merchant/stores/{shop.store_id}/products", token=shop.merchant,
                   json={"name": "臭豆腐", "price_fen": 1000})
    await shown([4, 0], "read")
    priced = await api.put(f"/api/v1/merchant/stores/{shop.store_id}/member-prices/"
                           f"{shop.sku_id}", token=shop.merchant,
                           json={"price_fen": 1500, "min_level": "regular"})
    assert priced.status == 200, priced.body
    before = await served("read")
    page = await api.get(catalogue)
    assert page.body["items"][0]["skus"][0]["member_price_fen"] == 1500, page.body
    assert await served("read") == before + 1
