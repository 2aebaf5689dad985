"""Coupons through the real mall: issued, claimed, applied at order time with the discount
computed by the server in fen, given back by a cancelled or expired order, and every misuse
refused with a 4xx naming its reason; limits hold under concurrent claims and uses."""

from __future__ import annotations

import asyncio

from .conftest import Clock, open_shop, order_body, window


async def issue_coupon(mall, shop, **fields) -> dict:
    """A store coupon 满10减3 from the operator unless `fields` say otherwise."""
    body = {"title": "满10减3", "kind": "threshold", "threshold_fen": 1000,
            "discount_fen": 300, "scope": "store", "store_id": shop.store_id,
            "total_qty": 100, "per_user_limit": 1, **window(mall), **fields}
    done = await mall.api.post("/api/v1/admin/coupons", token=shop.operator, json=body)
    assert done.status == 201, done.body
    return done.body


async def claim(mall, customer: str, template_id: int):
    return await mall.api.post(f"/api/v1/coupons/{template_id}/claim", token=customer)


async def claimed(mall, shop, customer: str, **fields) -> int:
    template = await issue_coupon(mall, shop, **fields)
    done = await claim(mall, customer, template["template_id"])
    assert done.status == 201, done.body
    return done.body["coupon_id"]


async def test_a_threshold_coupon_takes_its_discount_once_and_comes_back_on_cancel(mall):
    shop = await open_shop(mall, price_fen=450, stock=20)
    customer = await mall.api.login("coupon-fan")
    template = await issue_coupon(mall, shop, title="满50减8", threshold_fen=5000,
                                  discount_fen=800)
    offered = await mall.api.get(f"/api/v1/coupons?store_id={shop.store_id}")
    assert [t["template_id"] for t in offered.body["items"]] == [template["template_id"]]
    coupon = (await claim(mall, customer, template["template_id"])).body["coupon_id"]

    below = await mall.api.post("/api/v1/orders", token=customer, json=order_body(
        shop, qty=11, coupon_id=coupon))                        # 49.50 yuan
    assert below.status == 409 and below.error["code"] == "coupon_below_threshold"
    assert below.error["field"] == "coupon_id"
    order = await mall.api.post("/api/v1/orders", token=customer, json=order_body(
        shop, qty=12, coupon_id=coupon))                        # 54.00 yuan
    assert order.status == 201, order.body
    assert (order.body["total_fen"], order.body["discount_fen"]) == (12 * 450 - 800, 800)
    again = await mall.api.post("/api/v1/orders", token=customer, json=order_body(
        shop, qty=12, coupon_id=coupon))
    assert again.status == 409 and again.error["code"] == "coupon_used"
    view = await mall.api.get(f"/api/v1/orders/{order.body['order_id']}", token=customer)
    assert view.body["coupon"] == {"coupon_id": coupon, "discount_fen": 800}

    await mall.api.post(f"/api/v1/orders/{order.body['order_id']}/cancel", token=customer)
    mine = await mall.api.get("/api/v1/me/coupons", token=customer)
    assert [(c["coupon_id"], c["status"], c["order_id"]) for c in mine.body["items"]] == [
        (coupon, "available", None)]
    reused = await mall.api.post("/api/v1/orders", token=customer, json=order_body(
        shop, qty=12, coupon_id=coupon))
    assert reused.status == 201 and reused.body["total_fen"] == 12 * 450 - 800
    stock = await mall.api.get(f"/api/v1/merchant/stores/{shop.store_id}/inventory/"
                               f"{shop.sku_id}", token=shop.merchant)
    assert stock.body["reserved"] == 12                        # the cancelled 12 came back


async def test_percent_and_fixed_discounts_are_computed_in_fen_and_paid_as_charged(mall):
    shop = await open_shop(mall, price_fen=1999, stock=20)
    customer = await mall.api.login("percent")
    capped = await claimed(mall, shop, customer, title="85折 最多减5元", kind="percent",
                           threshold_fen=0, discount_fen=None, percent_off=15, cap_fen=500)
    small = await mall.api.post("/api/v1/orders", token=customer, json=order_body(
        shop, qty=1, coupon_id=capped))
    assert small.body["discount_fen"] == 1999 * 15 // 100      # 299 fen, under the cap
    await mall.api.post(f"/api/v1/orders/{small.body['order_id']}/cancel", token=customer)
    large = await mall.api.post("/api/v1/orders", token=customer, json=order_body(
        shop, qty=3, coupon_id=capped))
    assert (large.body["discount_fen"], large.body["total_fen"]) == (500, 3 * 1999 - 500)
    # A fixed discount above the subtotal leaves one fen to pay, as WeChat Pay takes no 0.
    owner = await mall.api.login("fixed")
    fixed = await claimed(mall, shop, owner, title="立减 30 元", kind="fixed",
                          threshold_fen=0, discount_fen=3000)
    tiny = await mall.api.post("/api/v1/orders", token=owner, json=order_body(
        shop, qty=1, coupon_id=fixed))
    assert (tiny.body["discount_fen"], tiny.body["total_fen"]) == (1998, 1)


async def test_scopes_decide_where_a_coupon_is_valid(mall):
    wuyi = await open_shop(mall, name="五一店", district="天心区")
    campus = await open_shop(mall, name="湖大店", district="岳麓区", merchant_openid="hd")
    customer = await mall.api.login("roamer")
    district = await claimed(mall, wuyi, customer, scope="district", store_id=None,
                             district="岳麓区", threshold_fen=0, kind="fixed")
    refused = await mall.api.post("/api/v1/orders", token=customer, json=order_body(
        wuyi, coupon_id=district))
    assert refused.status == 409 and refused.error["code"] == "coupon_not_for_this_store"
    accepted = await mall.api.post("/api/v1/orders", token=customer, json=order_body(
        campus, coupon_id=district))
    assert accepted.status == 201 and accepted.body["discount_fen"] == 300
    # Campus: the stores of a business circle (open_shop puts every store in 五一广场).
    circle = await claimed(mall, wuyi, await mall.api.login("student"), scope="campus",
                           store_id=None, campus="五一广场", threshold_fen=0, kind="fixed")
    student = await mall.api.login("student")
    assert (await mall.api.post("/api/v1/orders", token=student, json=order_body(
        campus, coupon_id=circle))).status == 201
    unknown = await mall.api.post("/api/v1/admin/coupons", token=wuyi.operator, json={
        "title": "无店校园券", "kind": "fixed", "discount_fen": 100, "scope": "campus",
        "campus": "不存在大学", "total_qty": 5, **window(mall)})
    assert unknown.status == 400 and unknown.error["field"] == "campus"
    # Another customer's coupon is no one's to use.
    stolen = await mall.api.post("/api/v1/orders", token=customer, json=order_body(
        campus, coupon_id=circle))
    assert stolen.status == 404 and stolen.error["field"] == "coupon_id"


async def test_bad_templates_are_refused_naming_the_field(mall):
    shop = await open_shop(mall)
    base = {"title": "券", "kind": "threshold", "threshold_fen": 1000, "discount_fen": 300,
            "scope": "store", "store_id": shop.store_id, "total_qty": 10, **window(mall)}
    cases = [
        ({"threshold_fen": 0}, "threshold_fen"),
        ({"discount_fen": 1000}, "discount_fen"),
        ({"percent_off": 10}, "percent_off"),
        ({"kind": "percent", "discount_fen": None, "threshold_fen": 0}, "percent_off"),
        ({"scope": "city"}, "store_id"),
        ({"scope": "district", "store_id": None}, "district"),
        ({"scope": "district", "store_id": None, "district": "浦东新区"}, "district"),
        ({"ends_at": base["starts_at"]}, "ends_at"),
        ({"starts_at": "2026-11-27T21:00:00"}, "starts_at"),     # no time zone
        ({"total_qty": 0}, "total_qty"),
        ({"discount_fen": "300"}, "discount_fen"),              # strict: no coercion
    ]
    for change, field in cases:
        body = {k: v for k, v in {**base, **change}.items() if v is not None}
        done = await mall.api.post("/api/v1/admin/coupons", token=shop.operator, json=body)
        assert done.status == 400 and done.error["field"] == field, (change, done.body)
    mine = await mall.api.post(f"/api/v1/merchant/stores/{shop.store_id}/coupons",
                               token=shop.merchant, json={**base, "scope": "city",
                                                          "store_id": None})
    assert mine.status == 400 and mine.error["code"] == "store_scope_only"
    ok = await mall.api.post(f"/api/v1/merchant/stores/{shop.store_id}/coupons",
                             token=shop.merchant, json={**base, "store_id": None})
    assert ok.status == 201 and ok.body["store_id"] == shop.store_id
    customer = await mall.api.login("nobody-special")
    assert (await mall.api.post("/api/v1/admin/coupons", token=customer, json=base)
            ).status == 403
    audit = await mall.api.get(f"/api/v1/merchant/stores/{shop.store_id}/audit-log",
                               token=shop.merchant)
    assert "coupon.create" in [entry["action"] for entry in audit.body["items"]]


async def test_quantity_and_per_customer_limits_hold_under_concurrent_claims(mall):
    shop = await open_shop(mall)
    template = await issue_coupon(mall, shop, total_qty=3, per_user_limit=2)
    customers = [await mall.api.login(f"rush-{n}") for n in range(8)]
    results = await asyncio.gather(*(claim(mall, c, template["template_id"])
                                     for c in customers))
    codes = sorted(r.status for r in results)
    assert codes == [201] * 3 + [409] * 5
    assert {r.error["code"] for r in results if r.status == 409} == {"coupons_gone"}
    limited = await issue_coupon(mall, shop, per_user_limit=2)
    one = customers[0]
    twice = [await claim(mall, one, limited["template_id"]) for _ in range(3)]
    assert [r.status for r in twice] == [201, 201, 409]
    assert twice[2].error["code"] == "coupon_limit_reached"
    assert twice[2].error["field"] == "template_id"


async def test_one_coupon_on_two_simultaneous_orders_makes_one_order(mall):
    shop = await open_shop(mall, stock=20)
    customer = await mall.api.login("double-tap")
    coupon = await claimed(mall, shop, customer, threshold_fen=0, kind="fixed")
    results = await asyncio.gather(*(mall.api.post("/api/v1/orders", token=customer,
                                                   json=order_body(shop, coupon_id=coupon))
                                     for _ in range(6)))
    assert sorted(r.status for r in results) == [201] + [409] * 5
    assert {r.error["code"] for r in results if r.status == 409} == {"coupon_used"}
    stock = await mall.api.get(f"/api/v1/merchant/stores/{shop.store_id}/inventory/"
                               f"{shop.sku_id}", token=shop.merchant)
    assert stock.body["reserved"] == 1                        # refused orders held nothing


async def test_a_retried_order_is_answered_with_its_order_though_its_coupon_is_used(mall):
    """The retry of an order that used a coupon finds the coupon used: it is answered with
    the order its Idempotency-Key made, not refused; another body under the key is 422."""
    shop = await open_shop(mall, stock=20)
    customer = await mall.api.login("flaky-network")
    coupon = await claimed(mall, shop, customer, threshold_fen=0, kind="fixed")
    headers = {"Idempotency-Key": "retry-after-timeout"}
    body = order_body(shop, coupon_id=coupon)
    first = await mall.api.post("/api/v1/orders", token=customer, json=body, headers=headers)
    assert first.status == 201, first.body
    retry = await mall.api.post("/api/v1/orders", token=customer, json=body, headers=headers)
    assert retry.status == 201 and retry.headers.get("Idempotent-Replayed") == "true", retry.body
    assert retry.body == first.body
    other = await mall.api.post("/api/v1/orders", token=customer, headers=headers,
                                json=order_body(shop, 2, coupon_id=coupon))
    assert other.status == 422 and other.error["code"] == "idempotency_key_reused", other.body
    fresh = await mall.api.post("/api/v1/orders", token=customer, json=body)
    assert fresh.status == 409 and fresh.error["code"] == "coupon_used", fresh.body
    stock = await mall.api.get(f"/api/v1/merchant/stores/{shop.store_id}/inventory/"
                               f"{shop.sku_id}", token=shop.merchant)
    assert stock.body["reserved"] == 1


async def test_the_window_is_on_the_mall_clock_and_an_expired_order_gives_its_coupon_back(
        start_mall):
    # 600x: one real second is ten simulated minutes; unpaid orders hold for 15 minutes.
    mall = await start_mall(clock=Clock.parse("2026-11-27T21:00+08:00@600"))
    shop = await open_shop(mall, stock=5)
    customer = await mall.api.login("night-owl")
    later = await issue_coupon(mall, shop, **window(mall, 60, 120))
    early = await claim(mall, customer, later["template_id"])
    assert early.status == 409 and early.error["code"] == "coupon_not_started"
    soon = await issue_coupon(mall, shop, threshold_fen=0, kind="fixed",
                              **window(mall, -1, 30))
    coupon = (await claim(mall, customer, soon["template_id"])).body["coupon_id"]
    order = await mall.api.post("/api/v1/orders", token=customer,
                                json=order_body(shop, coupon_id=coupon))
    assert order.status == 201
    for _ in range(100):                                       # expires after ~1.5 s
        mine = await mall.api.get("/api/v1/me/coupons", token=customer)
        if mine.body["items"][0]["status"] == "available":
            break
        await asyncio.sleep(0.1)
    view = await mall.api.get(f"/api/v1/orders/{order.body['order_id']}", token=customer)
    assert view.body["status"] == "expired" and view.body["coupon"] is None
    assert mine.body["items"][0]["status"] == "available"
    await asyncio.sleep(2.0)                                   # past the coupon's end (3 s)
    late = await mall.api.post("/api/v1/orders", token=customer,
                               json=order_body(shop, coupon_id=coupon))
    assert late.status == 409 and late.error["code"] == "coupon_expired"
    assert await mall.api.metric('mall_coupon_redemptions_total{change="returned"}') == 1
    assert await mall.api.metric('mall_coupon_refusals_total{reason="coupon_expired"}') == 1
