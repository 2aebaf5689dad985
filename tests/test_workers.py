"""The mall as production runs it: `xingcheng serve --workers 2` on PostgreSQL.  Every rule
that once leaned on SQLite's single writer is raced by a crowd whose requests the kernel
spreads over both workers (SO_REUSEPORT), whatever engine the rest of the suite runs on."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from mall.member_levels import SHIPPED, load_membership
from mall.verification import verify

from .api import Api
from .conftest import open_shop, order_body, rows_of
from .test_cli import serving
from .test_coupons import issue_coupon
from .test_flash_sales import buy, crowd, start_sale
from .test_group_buys import join, open_group, start_group_buy
from .test_payments import NOTIFY, held_notification, prepared_notification

pytestmark = pytest.mark.slow


@pytest.fixture
async def workers(start_mall, new_database):
    """(a mall in this process, for setting up; the two workers' API), on one PostgreSQL
    database and one payer."""
    here = await start_mall(db_path=await new_database("workers", engine="postgresql"))
    payer = ("--payer", here.payer.base_url, "--payer-keys", str(here.config.payer_keys))
    with serving(here.config.db_path, "--workers", "2", *payer) as base:
        there = Api(base, here.api.session)
        yield here, there


async def test_both_workers_answer_on_one_port(workers):
    _, there = workers
    pids = set()
    for _ in range(40):   # a new connection each time: the kernel picks a worker for each
        async with aiohttp.ClientSession() as fresh, \
                fresh.get(f"{there.base_url}/readyz") as ready:
            body = await ready.json()
        assert body["engine"] == "postgresql"
        pids.add(body["pid"])
    assert len(pids) == 2


async def test_300_buyers_for_10_units_make_exactly_10_orders(workers):
    here, there = workers
    shop = await open_shop(here, stock=10)
    tokens = await crowd(there, 300, "stock")
    replies = await asyncio.gather(*(there.post("/api/v1/orders", token=token,
                                                json=order_body(shop)) for token in tokens))
    statuses = [reply.status for reply in replies]
    assert statuses.count(201) == 10 and statuses.count(409) == 290, set(statuses)
    assert (await here.sql("SELECT on_hand, reserved FROM inventory WHERE sku_id = ?",
                           shop.sku_id))[0] == (10, 10)
    assert (await here.sql("SELECT count(*) FROM orders"))[0][0] == 10


async def test_2000_taps_for_100_flash_units_sell_exactly_100_within_the_limit(workers):
    here, there = workers
    shop = await open_shop(here, stock=150)
    sale = await start_sale(here, shop, quantity=100, per_user_limit=1)
    tokens = await crowd(there, 1000, "flash")
    replies = await asyncio.gather(*(buy(there, token, sale["sale_id"])
                                     for token in tokens for _ in range(2)))
    statuses = [reply.status for reply in replies]
    assert statuses.count(201) == 100 and set(statuses) == {201, 409}, set(statuses)
    held = await here.sql(
        "SELECT f.user_id, sum(f.qty) FROM flash_sale_orders f JOIN orders o"
        " ON o.id = f.order_id WHERE o.status NOT IN ('cancelled', 'expired')"
        " GROUP BY f.user_id")
    assert len(held) == 100 and all(units == 1 for _, units in held)
    assert (await here.sql("SELECT taken FROM flash_sales"))[0][0] == 100


async def test_500_customers_claiming_50_coupons_claim_50(workers):
    here, there = workers
    shop = await open_shop(here)
    template = await issue_coupon(here, shop, total_qty=50, per_user_limit=1)
    tokens = await crowd(there, 500, "coupon")
    replies = await asyncio.gather(*(
        there.post(f"/api/v1/coupons/{template['template_id']}/claim", token=token)
        for token in tokens))
    assert [reply.status for reply in replies].count(201) == 50
    assert (await here.sql("SELECT count(*) FROM user_coupons"))[0][0] == 50
    assert (await here.sql("SELECT claimed FROM coupon_templates"))[0][0] == 50


async def test_one_customer_tapping_claim_20_times_gets_only_their_limit(workers):
    here, there = workers
    shop = await open_shop(here)
    template = await issue_coupon(here, shop, total_qty=50, per_user_limit=2)
    customer = await there.login("eager")
    replies = await asyncio.gather(*(
        there.post(f"/api/v1/coupons/{template['template_id']}/claim", token=customer)
        for _ in range(20)))
    statuses = [reply.status for reply in replies]
    assert statuses.count(201) == 2 and statuses.count(409) == 18, statuses
    assert {reply.error["code"] for reply in replies if reply.status == 409} == {
        "coupon_limit_reached"}
    assert (await here.sql("SELECT claimed FROM coupon_templates"))[0][0] == 2


async def test_a_group_whose_members_all_pay_at_once_succeeds(workers):
    here, there = workers
    shop = await open_shop(here, stock=20)
    campaign = await start_group_buy(here, shop, group_size=5)
    members = [await here.api.login(f"member-{n}") for n in range(5)]
    opened = await open_group(here, members[0], campaign)
    group_id = opened.body["group"]["group_id"]
    orders = [opened.body["order_id"]]
    for member in members[1:]:
        orders.append((await join(here, member, group_id)).body["order_id"])
    notes = [await held_notification(here, member, order_id)
             for member, order_id in zip(members, orders, strict=True)]
    replies = await asyncio.gather(*(
        there.post(NOTIFY, data=note["body"].encode(), headers=note["headers"])
        for note in notes))
    assert {reply.status for reply in replies} == {204}
    group = (await there.get(f"/api/v1/groups/{group_id}")).body
    assert group["status"] == "succeeded" and group["paid"] == 5, group
    assert all(f.holds for f in await verify(here.config.db_path))


async def test_a_member_paying_six_orders_at_once_earns_for_each(workers):
    here, there = workers
    shop = await open_shop(here, stock=20)
    customer = await here.api.login("regular")
    notes = [(await prepared_notification(here, shop, customer))[1] for _ in range(6)]
    replies = await asyncio.gather(*(
        there.post(NOTIFY, data=note["body"].encode(), headers=note["headers"])
        for note in notes))
    assert {reply.status for reply in replies} == {204}
    spent, level, points = (await here.sql("SELECT spent_fen, level, points FROM members"))[0]
    assert spent == 6 * shop.price_fen
    assert level == load_membership(SHIPPED).level_for(spent).key
    assert points == (await here.sql("SELECT sum(points) FROM points_ledger"))[0][0] > 0
    assert all(f.holds for f in await verify(here.config.db_path))


async def test_one_idempotency_key_makes_one_order(workers):
    here, there = workers
    shop = await open_shop(here, stock=50)
    customer = await there.login("retrying")
    # 20 taps: risk control lets an account make 20 orders in 10 s per process (no
    # --redis here), and 30 taps sent 21 to one worker now and then (429, as it should).
    replies = await asyncio.gather(*(
        there.post("/api/v1/orders", token=customer, json=order_body(shop),
                   headers={"Idempotency-Key": "tap-once"}) for _ in range(20)))
    assert {reply.status for reply in replies} <= {200, 201}, {r.status for r in replies}
    assert len({reply.body["order_id"] for reply in replies}) == 1
    assert (await here.sql("SELECT count(*) FROM orders"))[0][0] == 1


async def test_one_payment_settles_once(workers):
    here, there = workers
    shop = await open_shop(here)
    customer = await here.api.login("paying")
    order_id, note = await prepared_notification(here, shop, customer)
    replies = await asyncio.gather(*(
        there.post(NOTIFY, data=note["body"].encode(),
                   headers=note["headers"]) for _ in range(30)))
    assert {reply.status for reply in replies} == {204}
    assert (await here.sql("SELECT status FROM orders WHERE id = ?", order_id))[0][0] == "paid"
    assert (await here.sql("SELECT count(*) FROM payments WHERE order_id = ? AND status ="
                           " 'succeeded'", order_id))[0][0] == 1
    assert (await here.sql("SELECT count(*) FROM payment_notifications"))[0][0] == 1


async def test_two_workers_expire_unpaid_orders_through_one_sweeper(start_mall, new_database):
    """The database's sweeps (expiry here) run in the first worker only; orders left unpaid
    still expire and give their stock back, with no other mall sweeping beside them."""
    here = await start_mall(db_path=await new_database("sweeps", engine="postgresql"),
                            sweeps_database=False)
    shop = await open_shop(here, stock=20)
    with serving(here.config.db_path, "--workers", "2", "--order-ttl", "1") as base:
        there = Api(base, here.api.session)
        taken = []
        for n in range(8):
            customer = await there.login(f"late-{n}")
            order = await there.post("/api/v1/orders", token=customer, json=order_body(shop))
            assert order.status == 201, order.body
            taken.append(order.body["order_id"])
        for _ in range(100):   # the sweep runs every second; allow it several
            statuses = {row[0] for row in await rows_of(
                here.config.db_path, "SELECT status FROM orders")}
            if statuses == {"expired"}:
                break
            await asyncio.sleep(0.1)
        assert statuses == {"expired"}
        reserved = await rows_of(here.config.db_path, "SELECT reserved FROM inventory WHERE"
                                 " sku_id = ?", shop.sku_id)
        assert reserved == [(0,)]
    assert all(finding.holds for finding in await verify(here.config.db_path))
