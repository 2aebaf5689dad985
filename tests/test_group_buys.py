"""Group buys (拼团) through the real mall and the real payment sandbox: opened, shared and
joined; successful when every member has paid; failed at the deadline with every paid
member refunded exactly once, unpaid orders cancelled and stock released."""

from __future__ import annotations

import asyncio

from mall.verification import verify

from .conftest import Clock, open_shop, wait_until_paid, window
from .test_refunds import order_status, payer_rows, stock

GROUP_PRICE = 1200


async def start_group_buy(mall, shop, **fields) -> dict:
    body = {"title": "三人团口味虾", "sku_id": shop.sku_id, "group_price_fen": GROUP_PRICE,
            "group_size": 3, "time_limit_minutes": 60, **window(mall, -1, 24 * 60), **fields}
    made = await mall.api.post(f"/api/v1/merchant/stores/{shop.store_id}/group-buys",
                               token=shop.merchant, json=body)
    assert made.status == 201, made.body
    return made.body


async def pay(mall, customer: str, order_id: int) -> None:
    prepay = await mall.api.post(f"/api/v1/orders/{order_id}/pay", token=customer)
    assert prepay.status == 201, prepay.body
    done = await mall.payer.post(f"/sandbox/payments/{prepay.body['prepay_id']}/complete",
                                 json={"result": "success"})
    assert done.status == 202
    await wait_until_paid(mall.api, customer, order_id)


async def open_group(mall, customer: str, campaign: dict):
    return await mall.api.post(f"/api/v1/group-buys/{campaign['group_buy_id']}/groups",
                               token=customer, json={})


async def join(mall, customer: str, group_id: int):
    return await mall.api.post(f"/api/v1/groups/{group_id}/orders", token=customer, json={})


async def test_a_group_succeeds_when_every_member_has_paid(mall, shop):
    campaign = await start_group_buy(mall, shop)
    listed = await mall.api.get("/api/v1/group-buys", params={"store_id": shop.store_id})
    assert [c["group_buy_id"] for c in listed.body["items"]] == [campaign["group_buy_id"]]
    leader, second, third, late = [await mall.api.login(f"member-{n}") for n in range(4)]
    opened = await open_group(mall, leader, campaign)
    assert opened.status == 201, opened.body
    assert opened.body["total_fen"] == GROUP_PRICE
    group = opened.body["group"]
    assert group["status"] == "open" and group["members"] == 1 and group["paid"] == 0
    shared = await mall.api.get(f"/api/v1/groups/shared/{group['share_code']}")
    assert shared.body["group_id"] == group["group_id"]
    orders = [opened.body["order_id"]]
    for customer in (second, third):
        joined = await join(mall, customer, group["group_id"])
        assert joined.status == 201, joined.body
        orders.append(joined.body["order_id"])
    full = await join(mall, late, group["group_id"])
    assert full.status == 409 and full.error["code"] == "group_full"
    again = await join(mall, second, group["group_id"])
    assert again.status == 409 and again.error["code"] == "already_in_group"
    for customer, order_id in zip((leader, second), orders, strict=False):
        await pay(mall, customer, order_id)
    # Paid but the group is not formed: the goods wait.
    code = (await mall.api.get(f"/api/v1/orders/{orders[0]}", token=leader)).body["pickup_code"]
    early = await mall.api.post(f"/api/v1/merchant/stores/{shop.store_id}/orders/{orders[0]}"
                                "/pickup", token=shop.merchant, json={"code": code})
    assert early.status == 409 and early.error["code"] == "group_not_formed"
    await pay(mall, third, orders[2])
    formed = await mall.api.get(f"/api/v1/groups/{group['group_id']}")
    assert formed.body["status"] == "succeeded" and formed.body["paid"] == 3
    picked = await mall.api.post(f"/api/v1/merchant/stores/{shop.store_id}/orders/{orders[0]}"
                                 "/pickup", token=shop.merchant, json={"code": code})
    assert picked.status == 200, picked.body
    closed = await join(mall, late, group["group_id"])
    assert closed.status == 409 and closed.error["code"] == "group_closed"
    assert await mall.api.metric('mall_groups_total{change="succeeded"}') == 1
    assert all(f.holds for f in await verify(mall.config.db_path))


async def test_concurrent_joiners_never_overfill_a_group(mall, shop):
    campaign = await start_group_buy(mall, shop, group_size=4)
    leader = await mall.api.login("leader")
    group_id = (await open_group(mall, leader, campaign)).body["group"]["group_id"]
    crowd = [await mall.api.login(f"joiner-{n}") for n in range(12)]
    replies = await asyncio.gather(*(join(mall, token, group_id) for token in crowd))
    assert sorted(r.status for r in replies) == [201] * 3 + [409] * 9
    assert {r.error["code"] for r in replies if r.status == 409} == {"group_full"}
    assert (await mall.api.get(f"/api/v1/groups/{group_id}")).body["members"] == 4


async def test_a_group_that_times_out_refunds_every_paid_member_exactly_once(start_mall):
    # 60x: the group's 2 simulated minutes are 2 real seconds.
    mall = await start_mall(clock=Clock.parse("2026-11-27T21:00+08:00@60"))
    shop = await open_shop(mall, stock=10)
    campaign = await start_group_buy(mall, shop, group_size=4, time_limit_minutes=2)
    members = [await mall.api.login(f"hopeful-{n}") for n in range(3)]
    opened = await open_group(mall, members[0], campaign)
    group_id = opened.body["group"]["group_id"]
    orders = [opened.body["order_id"]] + [
        (await join(mall, customer, group_id)).body["order_id"] for customer in members[1:]]
    for customer, order_id in zip(members[:2], orders[:2], strict=True):
        await pay(mall, customer, order_id)          # two pay, the third never does
    assert (await stock(mall, shop))["reserved"] == 3
    for customer, order_id in zip(members[:2], orders[:2], strict=True):
        await order_status(mall, customer, order_id, ("refunded",), seconds=6)
    unpaid = await order_status(mall, members[2], orders[2])
    assert unpaid["status"] == "cancelled"
    failed = await mall.api.get(f"/api/v1/groups/{group_id}")
    assert failed.body["status"] == "failed"
    assert (await stock(mall, shop))["reserved"] == 0 and (await stock(mall, shop))["on_hand"] == 10
    await asyncio.sleep(0.5)                           # more sweeps: nothing more happens
    refunded = payer_rows(mall, "SELECT out_trade_no, count(*), sum(amount_fen) FROM refunds"
                                " GROUP BY out_trade_no")
    assert len(refunded) == 2 and all(n == 1 and fen == GROUP_PRICE for _, n, fen in refunded)
    for customer, order_id in zip(members[:2], orders[:2], strict=True):
        refund = await mall.api.get(f"/api/v1/orders/{order_id}/refund", token=customer)
        assert refund.body["cause"] == "group_failed" and refund.body["status"] == "succeeded"
    assert await mall.api.metric('mall_groups_total{change="failed"}') == 1
    assert await mall.api.metric(
        'mall_refunds_total{change="refunded",reason="group_failed"}') == 2
    assert all(f.holds for f in await verify(mall.config.db_path))


async def test_bad_group_buys_and_joins_are_refused_naming_the_field(mall, shop):
    path = f"/api/v1/merchant/stores/{shop.store_id}/group-buys"
    good = {"title": "拼团", "sku_id": shop.sku_id, "group_price_fen": GROUP_PRICE,
            "group_size": 3, **window(mall)}
    for change, status, code, field in [
            ({"group_price_fen": shop.price_fen}, 400, "not_a_discount", "group_price_fen"),
            ({"group_size": 1}, 400, "invalid_field", "group_size"),
            ({"time_limit_minutes": 0}, 400, "invalid_field", "time_limit_minutes"),
            ({**window(mall, 10, 5)}, 400, "empty_window", "ends_at"),
            ({"sku_id": 999}, 404, "not_found", "sku_id")]:
        reply = await mall.api.post(path, token=shop.merchant, json={**good, **change})
        assert (reply.status, reply.error["code"], reply.error["field"]) == (status, code, field)
    customer = await mall.api.login("curious")
    assert (await mall.api.post(path, token=customer, json=good)).status == 403
    later = await start_group_buy(mall, shop, **window(mall, 30, 60))
    early = await open_group(mall, customer, later)
    assert early.status == 409 and early.error["code"] == "group_buy_not_on"
    assert (await join(mall, customer, 999)).status == 404
    assert (await mall.api.get("/api/v1/groups/shared/NOPE")).status == 404
