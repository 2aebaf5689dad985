"""The stores' dashboards' figures (GET .../kpis and /admin/kpis) against the database:
every figure equals its recomputation here in plain SQL, for two stores, two windows and
the operator's districts; visits are counted once per customer and hour; a merchant sees
only their own stores; a bad window is a 400 naming its field."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest

from shared.clock import SHANGHAI

from .conftest import Clock, open_shop, paid_order
from .test_refunds import ask, decide, order_status

START = datetime(2026, 11, 27, 21, 0, tzinfo=SHANGHAI)


async def recomputed(mall, store_id: int | None, since: str, until: str,
                     district: str | None = None) -> dict:
    """A store's (or a district's) figures, straight from the tables."""
    scope = "{t}.store_id = ?" if store_id is not None else \
        "{t}.store_id IN (SELECT id FROM stores WHERE district_code = ?)"
    o, key = scope.format(t="o"), store_id if store_id is not None else district
    (gmv, paid), = await mall.sql(
        f"SELECT COALESCE(SUM(total_fen), 0), COUNT(*) FROM orders o WHERE {o}"
        " AND paid_at >= ? AND paid_at < ?", key, since, until)
    (refunds, refunded), = await mall.sql(
        "SELECT COUNT(*), COALESCE(SUM(r.amount_fen), 0) FROM refunds r JOIN orders o"
        f" ON o.id = r.order_id WHERE {o} AND r.status = 'succeeded'"
        " AND r.settled_at >= ? AND r.settled_at < ?", key, since, until)
    (created,), = await mall.sql(f"SELECT COUNT(*) FROM orders o WHERE {o}"
                                 " AND created_at >= ? AND created_at < ?", key, since, until)
    (visits,), = await mall.sql(f"SELECT COUNT(*) FROM store_visits v WHERE "
                                f"{scope.format(t='v')} AND hour >= ? AND hour < ?",
                                key, since, until)
    month_before = (datetime.fromisoformat(until) - timedelta(days=30)).isoformat(
        timespec="milliseconds")
    buyers = await mall.sql(
        "SELECT o.user_id, MIN(o.paid_at), SUM(CASE WHEN o.paid_at >= ? THEN 1 ELSE 0 END)"
        f" FROM orders o WHERE {o} AND o.paid_at IS NOT NULL AND o.paid_at < ?"
        " GROUP BY o.user_id HAVING MAX(o.paid_at) >= ?", month_before, key, until, since)
    waits = sorted((datetime.fromisoformat(handed) - datetime.fromisoformat(paid_at))
                   .total_seconds() for paid_at, handed in await mall.sql(
        f"SELECT paid_at, handed_over_at FROM orders o WHERE {o} AND fulfilment = 'pickup'"
        " AND handed_over_at >= ? AND handed_over_at < ?", key, since, until))
    new = sum(1 for _, first, _ in buyers if first >= since)

    def rank(share: float):
        return waits[max(math.ceil(share * len(waits)) - 1, 0)] if waits else None

    return {"gmv_fen": gmv, "paid_orders": paid, "refunds": refunds, "refunded_fen": refunded,
            "orders_created": created, "visits": visits,
            "avg_order_fen": gmv // paid if paid else None,
            "conversion": round(paid / visits, 4) if visits else None,
            "refund_rate": round(refunds / paid, 4) if paid else None,
            "customers": {"paying": len(buyers), "new": new, "returning": len(buyers) - new,
                          "repurchase_rate": round(sum(1 for b in buyers if b[2] >= 2)
                                                   / len(buyers), 4) if buyers else None},
            "waits": (len(waits), rank(0.5), rank(0.9))}


def same(answer: dict, expected: dict) -> None:
    for name, value in expected.items():
        if name == "waits":
            wait = answer["pickup_wait_s"]
            assert wait["orders"] == value[0]
            for got, want in zip((wait["p50"], wait["p90"]), value[1:], strict=True):
                # shown to a tenth of a second
                assert (got is None) == (want is None) and (got is None or
                                                            abs(got - want) <= 0.0501)
        else:
            assert answer[name] == value, (name, answer[name], value)


@pytest.fixture
async def city(start_mall):
    """Two stores in two districts on a clock that starts at 21:00 on a Friday: customers who
    browse, order, pay, come back, ask for a refund and pick up."""
    mall = await start_mall(clock=Clock(START))
    api = mall.api
    a = await open_shop(mall, stock=6, price_fen=1800)
    b = await open_shop(mall, merchant_openid="merchant-2", name="梅溪湖烘焙",
                        district="岳麓区", circle="梅溪湖", price_fen=2500)
    quiet = await open_shop(mall, merchant_openid="merchant-3", name="开福寺素斋",
                            district="开福区", circle="开福寺", price_fen=900)
    c = {name: await api.login(name) for name in ("c1", "c2", "c3", "c4", "c5")}
    await api.get(f"/api/v1/stores/{quiet.store_id}/products", token=c["c5"])  # looks only
    for name in ("c1", "c1", "c2", "c4", "c5"):
        await api.get(f"/api/v1/stores/{a.store_id}/products", token=c[name])
    await api.get(f"/api/v1/stores/{a.store_id}/products")        # anonymous: no visit
    await api.get(f"/api/v1/stores/{b.store_id}/products", token=c["c3"])
    first = await paid_order(mall, a, c["c1"])
    base = f"/api/v1/merchant/stores/{a.store_id}"
    code = (await api.get(f"/api/v1/orders/{first}", token=c["c1"])).body["pickup_code"]
    await api.post(f"{base}/orders/{first}/ready", token=a.merchant)
    handed = await api.post(f"{base}/orders/{first}/pickup", token=a.merchant,
                            json={"code": code})
    assert handed.status == 200, handed.body
    middle = mall.services.clock.stamp()
    await paid_order(mall, a, c["c1"], qty=2)
    refunded = await paid_order(mall, a, c["c2"])
    assert (await ask(mall, c["c2"], refunded)).status == 201
    assert (await decide(mall, a, refunded)).status == 200
    await order_status(mall, c["c2"], refunded, ("refunded",))
    await paid_order(mall, b, c["c3"])
    unpaid = await api.post("/api/v1/orders", token=c["c4"], json={
        "store_id": a.store_id, "lines": [{"sku_id": a.sku_id, "qty": 1}],
        "fulfilment": "pickup"})
    assert unpaid.status == 201
    return mall, a, b, c, middle, quiet


async def test_a_stores_figures_equal_the_tables_in_two_windows(city):
    mall, a, b, _, middle, quiet_shop = city
    day = (START.date().isoformat(), (START.date() + timedelta(days=1)).isoformat())
    for shop in (a, b, quiet_shop):
        for since, until in (day, (middle, None)):
            query = {"from": since} | ({"to": until} if until else {})
            got = await mall.api.get(f"/api/v1/merchant/stores/{shop.store_id}/kpis",
                                     params=query, token=shop.merchant)
            assert got.status == 200, got.body
            same(got.body, await recomputed(mall, shop.store_id, got.body["from"],
                                            got.body["to"]))
    whole = (await mall.api.get(f"/api/v1/merchant/stores/{a.store_id}/kpis",
                                token=a.merchant)).body
    # What happened at store A, as the fixture made it happen:
    assert whole["from"] == "2026-11-27T00:00:00.000+08:00"
    assert (whole["paid_orders"], whole["orders_created"], whole["visits"]) == (3, 4, 4)
    assert whole["gmv_fen"] == 4 * 1800 and whole["avg_order_fen"] == 2400
    assert (whole["refunds"], whole["refunded_fen"], whole["refund_rate"]) == (1, 1800, 0.3333)
    assert whole["conversion"] == 0.75
    assert whole["customers"] == {"paying": 2, "new": 2, "returning": 0,
                                  "repurchase_rate": 0.5}
    assert whole["pickup_wait_s"]["orders"] == 1
    assert [f["count"] for f in whole["funnel"]] == [4, 4, 3]
    assert whole["top_products"]["by_units"] == [{"sku_id": a.sku_id, "product_name":
                                                 "口味虾 中份", "units": 4, "gmv_fen": 7200}]
    friday = whole["heatmap"]["counts"][4]
    assert sum(map(sum, whole["heatmap"]["counts"])) == friday[21] == 3
    assert len(whole["series"]) == 24 and whole["series"][21]["paid_orders"] == 3
    assert sum(s["gmv_fen"] for s in whole["series"]) == whole["gmv_fen"]
    (on_hand, reserved), = await mall.sql("SELECT on_hand, reserved FROM inventory WHERE"
                                          " sku_id = ?", a.sku_id)
    assert whole["low_stock"] == [{"sku_id": a.sku_id, "product_name": "口味虾 中份",
                                   "spec": "标准", "on_hand": on_hand,
                                   "available": on_hand - reserved}]
    quiet = (await mall.api.get(f"/api/v1/merchant/stores/{quiet_shop.store_id}/kpis",
                                token=quiet_shop.merchant)).body
    assert (quiet["visits"], quiet["paid_orders"], quiet["conversion"]) == (1, 0, 0.0)
    assert quiet["avg_order_fen"] is None and quiet["pickup_wait_s"]["p50"] is None
    later = (await mall.api.get(f"/api/v1/merchant/stores/{a.store_id}/kpis",
                                params={"from": middle}, token=a.merchant)).body
    assert later["paid_orders"] == 2 and later["customers"]["returning"] == 1


async def test_the_operator_sees_the_same_figures_by_district(city):
    mall, a, _, _, _, _ = city
    got = await mall.api.get("/api/v1/admin/kpis", params={"from": "2026-11-27"},
                             token=a.operator)
    assert got.status == 200, got.body
    districts = {row["name"]: row for row in got.body["districts"]}
    assert set(districts) == {"天心区", "岳麓区", "开福区"}
    for row in got.body["districts"]:
        same(row, await recomputed(mall, None, got.body["from"], got.body["to"],
                                   district=row["key"]))
    assert districts["天心区"]["gmv_fen"] == 7200 and districts["岳麓区"]["gmv_fen"] == 2500
    assert {row["name"] for row in got.body["business_circles"]} == {"五一广场", "梅溪湖",
                                                                     "开福寺"}
    refused = await mall.api.get("/api/v1/admin/kpis", token=a.merchant)
    assert refused.status == 403


async def test_a_merchant_sees_only_their_own_stores_and_bad_windows_name_their_field(city):
    mall, a, b, c, _, _ = city
    path = f"/api/v1/merchant/stores/{a.store_id}/kpis"
    assert (await mall.api.get(path, token=b.merchant)).status == 403
    assert (await mall.api.get(path, token=c["c1"])).status == 403
    assert (await mall.api.get(path)).status == 401
    for query, field in (({"from": "2026-11-28", "to": "2026-11-27"}, "to"),
                         ({"from": "2026-13-45"}, "from"), ({"from": "yesterday"}, "from"),
                         ({"granularity": "minute"}, "granularity"),
                         ({"from": "2026-01-01", "to": "2026-03-01"}, "to"),
                         ({"week": "1"}, "week")):
        bad = await mall.api.get(path, params=query, token=a.merchant)
        assert bad.status == 400 and bad.error["field"] == field, (query, bad.body)
    by_day = await mall.api.get(path, params={"from": "2026-11-01", "to": "2026-12-01",
                                              "granularity": "day"}, token=a.merchant)
    assert by_day.status == 200 and len(by_day.body["series"]) == 30


async def test_the_dashboard_page_is_served_by_the_mall_with_its_charting_script(mall):
    session, base = mall.api.session, mall.api.base_url
    async with session.get(f"{base}/merchant", allow_redirects=False) as moved:
        assert moved.status == 302 and moved.headers["Location"] == "/merchant/"
    async with session.get(f"{base}/merchant/") as page:
        html = await page.text()
        assert page.status == 200 and page.content_type == "text/html"
    assert "门店运营看板" in html and 'src="plotly.min.js"' in html and "http" not in html
    async with session.get(f"{base}/merchant/plotly.min.js") as script:
        assert script.status == 200 and script.content_type == "text/javascript"
        assert len(await script.read()) > 1_000_000
    async with session.get(f"{base}/merchant/dashboard.js") as script:
        code = await script.text()
        assert script.status == 200 and "/kpis" in code and "pickup-queue" in code
    async with session.get(f"{base}/merchant/secrets.py") as missing:
        assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"
