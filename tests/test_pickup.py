"""In-store pickup: ready, code verification, lockout, and stock leaving the shelf."""

from __future__ import annotations

from .conftest import paid_order


async def test_pickup_flow_with_a_wrong_code_first(mall, shop):
    api = mall.api
    customer = await api.login("parent")
    order_id = await paid_order(mall, shop, customer, qty=2)
    code = (await api.get(f"/api/v1/orders/{order_id}", token=customer)).body["pickup_code"]
    base = f"/api/v1/merchant/stores/{shop.store_id}"
    queue = await api.get(f"{base}/pickup-queue", token=shop.merchant)
    assert [o["order_id"] for o in queue.body["items"]] == [order_id]
    assert "pickup_code" not in queue.body["items"][0]
    ready = await api.post(f"{base}/orders/{order_id}/ready", token=shop.merchant)
    assert ready.body["status"] == "ready_for_pickup"
    again = await api.post(f"{base}/orders/{order_id}/ready", token=shop.merchant)
    assert again.status == 409 and again.error["code"] == "wrong_state"
    wrong = "000000" if code != "000000" else "111111"
    refused = await api.post(f"{base}/orders/{order_id}/pickup", token=shop.merchant,
                             json={"code": wrong})
    assert refused.status == 422 and refused.error["code"] == "wrong_pickup_code"
    assert refused.error["attempts_left"] == 4
    assert await api.metric("mall_pickup_code_failures_total") == 1
    done = await api.post(f"{base}/orders/{order_id}/pickup", token=shop.merchant,
                          json={"code": code})
    assert done.status == 200 and done.body["status"] == "completed"
    assert tuple((await mall.sql("SELECT on_hand, reserved FROM inventory WHERE sku_id = ?",
                                 shop.sku_id))[0]) == (8, 0)
    today = await api.get(f"{base}/orders", token=shop.merchant)
    assert [o["status"] for o in today.body["items"]] == ["completed"]
    assert (await api.get(f"{base}/pickup-queue", token=shop.merchant)).body["items"] == []
    assert await api.metric('mall_orders_total{change="completed"}') == 1


async def test_wrong_codes_lock_the_order(mall, shop):
    api = mall.api
    customer = await api.login("parent")
    order_id = await paid_order(mall, shop, customer)
    code = (await api.get(f"/api/v1/orders/{order_id}", token=customer)).body["pickup_code"]
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    path = f"/api/v1/merchant/stores/{shop.store_id}/orders/{order_id}/pickup"
    statuses = [(await api.post(path, token=shop.merchant, json={"code": wrong})).status
                for _ in range(6)]
    assert statuses == [422] * 5 + [429]
    locked = await api.post(path, token=shop.merchant, json={"code": code})
    assert locked.status == 429 and locked.error["code"] == "pickup_locked"


async def test_stock_sync_cannot_go_below_what_orders_hold(mall, shop):
    api = mall.api
    customer = await api.login("buyer")
    await paid_order(mall, shop, customer, qty=4)
    path = f"/api/v1/merchant/stores/{shop.store_id}/inventory"
    below = await api.put(f"{path}/{shop.sku_id}", token=shop.merchant, json={"stock": 3})
    assert below.status == 409 and below.error["code"] == "below_reserved"
    assert below.error["reserved"] == 4 and below.error["field"] == "stock"
    seen = await api.get(f"{path}/{shop.sku_id}", token=shop.merchant)
    assert seen.body == {"sku_id": shop.sku_id, "on_hand": 10, "reserved": 4, "available": 6}
    level = await api.put(f"{path}/{shop.sku_id}", token=shop.merchant, json={"stock": 4})
    assert level.body == {"sku_id": shop.sku_id, "on_hand": 4, "reserved": 4, "available": 0}
    bulk = await api.put(path, token=shop.merchant, json={"items": [
        {"sku_id": shop.sku_id, "stock": 20}, {"sku_id": 999999, "stock": 1}]})
    assert bulk.status == 404 and bulk.error["field"] == "items.1.sku_id"
    assert (await mall.sql("SELECT on_hand FROM inventory WHERE sku_id = ?",  # all or none
                           shop.sku_id))[0][0] == 4


async def test_delivery_orders_go_out_and_arrive(mall, shop):
    api = mall.api
    customer = await api.login("office-worker")
    address = await api.post("/api/v1/me/addresses", token=customer, json={
        "contact_name": "王芳", "phone": "13973112345", "district": "开福区",
        "detail": "四方坪 凯乐国际城 3 栋"})
    order = await api.post("/api/v1/orders", token=customer, json={
        "store_id": shop.store_id, "lines": [{"sku_id": shop.sku_id, "qty": 1}],
        "fulfilment": "delivery", "address_id": address.body["id"]})
    assert order.status == 201, order.body
    order_id = order.body["order_id"]
    prepay = await api.post(f"/api/v1/orders/{order_id}/pay", token=customer)
    await mall.payer.post(f"/sandbox/payments/{prepay.body['prepay_id']}/complete",
                          json={"result": "success"})
    base = f"/api/v1/merchant/stores/{shop.store_id}/orders/{order_id}"
    for _ in range(200):
        if (await api.get(f"/api/v1/orders/{order_id}", token=customer)).body["status"] == "paid":
            break
    wrong = await api.post(f"{base}/ready", token=shop.merchant)
    assert wrong.status == 409 and wrong.error["code"] == "wrong_fulfilment"
    out = await api.post(f"{base}/dispatch", token=shop.merchant)
    assert out.body["status"] == "out_for_delivery"
    done = await api.post(f"{base}/delivered", token=shop.merchant)
    assert done.body["status"] == "completed"
    assert "pickup_code" not in (await api.get(f"/api/v1/orders/{order_id}",
                                               token=customer)).body
