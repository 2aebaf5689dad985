"""Unpaid orders expire on the mall clock and give their stock back."""

from __future__ import annotations

import asyncio

from .conftest import Clock, open_shop, order_body


async def test_expiry_releases_stock(start_mall):
    # 600x clock: a 15-minute hold lasts 1.5 real seconds.
    mall = await start_mall(clock=Clock.parse("2026-11-27T21:00+08:00@600"),
                            order_ttl_seconds=900)
    shop = await open_shop(mall, stock=3)
    api = mall.api
    customer = await api.login("forgetful")
    order = await api.post("/api/v1/orders", token=customer, json=order_body(shop, 3))
    assert order.status == 201
    sold_out = await api.post("/api/v1/orders", token=customer, json=order_body(shop, 1))
    assert sold_out.status == 409
    path = f"/api/v1/orders/{order.body['order_id']}"
    for _ in range(100):
        view = await api.get(path, token=customer)
        if view.body["status"] == "expired":
            break
        await asyncio.sleep(0.05)
    assert view.body["status"] == "expired"
    assert view.body["closed_at"] >= view.body["expires_at"]
    product = await api.get(f"/api/v1/stores/{shop.store_id}/products/{shop.product_id}")
    assert product.body["skus"][0]["available"] == 3
    assert (await api.post("/api/v1/orders", token=customer,
                           json=order_body(shop, 3))).status == 201
    assert await api.metric('mall_orders_total{change="expired"}') == 1
    paying = await api.post(f"{path}/pay", token=customer)
    assert paying.status == 409


async def test_paying_after_the_deadline_is_refused_even_before_the_sweep(start_mall):
    mall = await start_mall(clock=Clock.parse("2026-11-27T21:00+08:00@600"),
                            order_ttl_seconds=60, expiry_sweep_interval=3600)
    shop = await open_shop(mall, stock=1)
    customer = await mall.api.login("late")
    order = await mall.api.post("/api/v1/orders", token=customer, json=order_body(shop))
    await asyncio.sleep(0.2)  # 120 simulated seconds
    paying = await mall.api.post(f"/api/v1/orders/{order.body['order_id']}/pay", token=customer)
    assert paying.status == 409 and paying.error["code"] == "order_expired"
    product = await mall.api.get(f"/api/v1/stores/{shop.store_id}/products/{shop.product_id}")
    assert product.body["skus"][0]["available"] == 1
