"""Flash sales (秒杀) through the real mall: set up by a merchant, bought by a crowd that never
oversells it (in one process or two on one database), sold-out refusals answered from
memory, nothing sold outside the window, the per-customer limit, and unpaid orders that
expire fast and put their units back on sale."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from mall.risk_control import SHIPPED
from mall.verification import verify

from .api import Api
from .conftest import Clock, open_shop, window
from .test_cli import serving

SALE_PRICE = 990


async def start_sale(mall, shop, **fields) -> dict:
    body = {"title": "口味虾秒杀", "sku_id": shop.sku_id, "price_fen": SALE_PRICE,
            "quantity": 5, "per_user_limit": 1, **window(mall, -1, 60), **fields}
    sale = await mall.api.post(f"/api/v1/merchant/stores/{shop.store_id}/flash-sales",
                               token=shop.merchant, json=body)
    assert sale.status == 201, sale.body
    return sale.body


async def buy(api: Api, token: str, sale_id: int, key: str | None = None, **body):
    return await api.post(f"/api/v1/flash-sales/{sale_id}/orders", token=token, json=body,
                          headers={"Idempotency-Key": key} if key else None)


async def crowd(api: Api, size: int, prefix: str) -> list[str]:
    """`size` logged-in customers, logging in a hundred at a time."""
    tokens: list[str] = []
    for start in range(0, size, 100):
        tokens += await asyncio.gather(*(api.login(f"{prefix}-{n}")
                                         for n in range(start, min(size, start + 100))))
    return tokens


async def flash_rows(mall) -> tuple[int, list[tuple[int, int]]]:
    """(the sale's taken count, (buyer, units) of every order not closed) from the database."""
    taken = (await mall.sql("SELECT taken FROM flash_sales"))[0][0]
    held = await mall.sql(
        "SELECT f.user_id, sum(f.qty) FROM flash_sale_orders f JOIN orders o"
        " ON o.id = f.order_id WHERE o.status NOT IN ('cancelled', 'expired')"
        " GROUP BY f.user_id")
    return taken, [tuple(row) for row in held]


async def test_a_sale_sells_at_its_price_only_within_its_window(start_mall):
    # 600x: one real second is ten simulated minutes.
    mall = await start_mall(clock=Clock.parse("2026-11-27T21:00+08:00@600"))
    shop = await open_shop(mall, stock=10)
    sale = await start_sale(mall, shop, **window(mall, 10, 20))   # starts in ~1 s
    assert sale["state"] == "upcoming" and sale["left"] == 5
    assert sale["list_price_fen"] == shop.price_fen
    customer = await mall.api.login("early-bird")
    early = await buy(mall.api, customer, sale["sale_id"])
    assert early.status == 409 and early.error["code"] == "flash_sale_not_started"
    assert early.error["field"] == "sale_id" and early.error["starts_at"] == sale["starts_at"]
    listed = await mall.api.get("/api/v1/flash-sales", params={"district": "天心区"})
    assert [item["sale_id"] for item in listed.body["items"]] == [sale["sale_id"]]
    for _ in range(40):
        await asyncio.sleep(0.1)
        order = await buy(mall.api, customer, sale["sale_id"])
        if order.status == 201:
            break
    assert order.status == 201, order.body
    assert order.body["total_fen"] == SALE_PRICE
    assert order.body["flash_sale_id"] == sale["sale_id"]
    view = await mall.api.get(f"/api/v1/orders/{order.body['order_id']}", token=customer)
    assert view.body["lines"][0]["unit_price_fen"] == SALE_PRICE
    assert view.body["flash_sale_id"] == sale["sale_id"]
    one = await mall.api.get(f"/api/v1/flash-sales/{sale['sale_id']}")
    assert one.body["state"] == "on" and one.body["left"] == 4
    await asyncio.sleep(1.2)                                       # past its end
    late = await buy(mall.api, await mall.api.login("late"), sale["sale_id"])
    assert late.status == 409 and late.error["code"] == "flash_sale_ended"
    ended = await mall.api.get(f"/api/v1/flash-sales/{sale['sale_id']}")
    assert ended.body["state"] == "ended"
    refused = 'mall_flash_sale_refusals_total{answered_from="memory",reason="%s"}'
    assert await mall.api.metric(refused % "flash_sale_not_started") >= 1
    assert await mall.api.metric(refused % "flash_sale_ended") == 1


async def test_bad_sales_are_refused_naming_the_field(mall, shop):
    other = await open_shop(mall, merchant_openid="merchant-2", name="别家")
    path = f"/api/v1/merchant/stores/{shop.store_id}/flash-sales"
    good = {"title": "秒杀", "sku_id": shop.sku_id, "price_fen": SALE_PRICE, "quantity": 5,
            **window(mall)}
    cases = [
        ({"price_fen": shop.price_fen}, 400, "not_a_discount", "price_fen"),
        ({"price_fen": 0}, 400, "invalid_field", "price_fen"),
        ({"quantity": 0}, 400, "invalid_field", "quantity"),
        ({"per_user_limit": 6}, 400, "limit_above_quantity", "per_user_limit"),
        ({"pay_within_seconds": 5}, 400, "invalid_field", "pay_within_seconds"),
        ({**window(mall, 10, 5)}, 400, "empty_window", "ends_at"),
        ({**window(mall, -20, -10)}, 400, "already_ended", "ends_at"),
        ({"starts_at": "2026-11-27T21:00"}, 400, "invalid_field", "starts_at"),
        ({"sku_id": other.sku_id}, 404, "not_found", "sku_id"),
        ({"quantity": 11}, 409, "not_enough_stock", "quantity"),
    ]
    for change, status, code, field in cases:
        reply = await mall.api.post(path, token=shop.merchant, json={**good, **change})
        assert reply.status == status, (change, reply.body)
        assert (reply.error["code"], reply.error["field"]) == (code, field), (change, reply.body)
    customer = await mall.api.login("not-staff")
    assert (await mall.api.post(path, token=customer, json=good)).status == 403
    assert (await mall.api.post(path, token=other.merchant, json=good)).status == 403
    made = await mall.api.post(path, token=shop.merchant, json=good)
    assert made.status == 201, made.body
    audit = await mall.api.get(f"/api/v1/merchant/stores/{shop.store_id}/audit-log",
                               token=shop.merchant)
    assert audit.body["items"][0]["action"] == "flash_sale.create"
    missing = await buy(mall.api, customer, 999)
    assert missing.status == 404 and missing.error["field"] == "sale_id"
    too_many = await buy(mall.api, customer, made.body["sale_id"], qty=2)
    assert too_many.status == 409 and too_many.error == {
        "code": "flash_sale_limit_reached", "field": "qty",
        "message": "at most 1 per customer in this sale"}
    typo = await buy(mall.api, customer, made.body["sale_id"], qty="1")
    assert typo.status == 400 and typo.error["field"] == "qty"


async def test_the_per_customer_limit_counts_orders_not_closed(mall, shop):
    sale = await start_sale(mall, shop, per_user_limit=2)
    customer = await mall.api.login("hoarder")
    first = await buy(mall.api, customer, sale["sale_id"], qty=2)
    assert first.status == 201, first.body
    more = await buy(mall.api, customer, sale["sale_id"])
    assert more.status == 409 and more.error["code"] == "flash_sale_limit_reached"
    assert more.error["held"] == 2
    cancel = await mall.api.post(f"/api/v1/orders/{first.body['order_id']}/cancel",
                                 token=customer)
    assert cancel.status == 200
    again = await buy(mall.api, customer, sale["sale_id"])
    assert again.status == 201, again.body
    assert (await mall.api.get(f"/api/v1/flash-sales/{sale['sale_id']}")).body["left"] == 4
    replay = await buy(mall.api, customer, sale["sale_id"], key="tap-1")
    assert replay.status == 201
    twice = await buy(mall.api, customer, sale["sale_id"], key="tap-1")
    assert twice.status == 201 and twice.headers["Idempotent-Replayed"] == "true"
    assert twice.body["order_id"] == replay.body["order_id"]
    assert await mall.api.metric('mall_flash_sale_units_total{change="taken"}') == 4
    assert await mall.api.metric('mall_flash_sale_units_total{change="returned"}') == 2


async def test_2000_concurrent_buyers_for_100_units_make_exactly_100_orders(mall):
    shop = await open_shop(mall, stock=150)
    sale = await start_sale(mall, shop, quantity=100)
    tokens = await crowd(mall.api, 1800, "hunter")
    # 200 of them tap twice at once: 2,000 attempts, no one beyond the limit of 1.
    attempts = tokens + tokens[:200]
    replies = await asyncio.gather(*(buy(mall.api, token, sale["sale_id"])
                                     for token in attempts))
    statuses = [reply.status for reply in replies]
    assert statuses.count(201) == 100 and set(statuses) == {201, 409}, set(statuses)
    codes = {reply.error["code"] for reply in replies if reply.status == 409}
    assert codes <= {"sold_out", "flash_sale_limit_reached"}, codes
    taken, held = await flash_rows(mall)
    assert taken == 100 and len(held) == 100 and {units for _, units in held} == {1}
    stock = await mall.api.get(f"/api/v1/merchant/stores/{shop.store_id}/inventory/"
                               f"{shop.sku_id}", token=shop.merchant)
    assert stock.body["reserved"] == 100 and stock.body["available"] == 50
    late = await buy(mall.api, await mall.api.login("latecomer"), sale["sale_id"])
    assert late.status == 409 and late.error["code"] == "sold_out"
    assert await mall.api.metric(
        'mall_flash_sale_refusals_total{answered_from="memory",reason="sold_out"}') >= 1
    assert all(finding.holds for finding in await verify(mall.config.db_path))


@pytest.mark.slow  # processes started, stopped or killed
async def test_two_processes_share_the_stock_and_both_learn_it_is_sold_out(start_mall):
    here = await start_mall()
    shop = await open_shop(here, stock=150)
    sale = await start_sale(here, shop, quantity=100)
    tokens = await crowd(here.api, 2000, "both")
    with serving(here.config.db_path) as base:
        there = Api(base, here.api.session)
        replies = await asyncio.gather(*(buy(here.api if n % 2 else there, token,
                                             sale["sale_id"])
                                         for n, token in enumerate(tokens)))
        statuses = [reply.status for reply in replies]
        assert statuses.count(201) == 100 and set(statuses) == {201, 409}, set(statuses)
        assert {r.error["code"] for r in replies if r.status == 409} == {"sold_out"}
        taken, held = await flash_rows(here)
        assert taken == 100 and len(held) == 100
        # Each process answers the crowd's later taps from memory.
        for api in (here.api, there):
            again = await buy(api, tokens[0], sale["sale_id"])
            assert again.status == 409 and again.error["code"] in ("sold_out",
                                                                   "flash_sale_limit_reached")
            assert await api.metric('mall_flash_sale_refusals_total{answered_from="memory",'
                                    'reason="sold_out"}') >= 1
        # A unit comes back in one process; the other sells it once its memory lapses.
        winner = next(n for n, reply in enumerate(replies) if reply.status == 201)
        cancel = await here.api.post(f"/api/v1/orders/{replies[winner].body['order_id']}/cancel",
                                     token=tokens[winner])
        assert cancel.status == 200, cancel.body
        await asyncio.sleep(0.3)                       # the 0.2 s recheck interval lapses
        refused = [t for n, t in enumerate(tokens) if replies[n].status == 409]
        second = await buy(there, refused[0], sale["sale_id"])
        assert second.status == 201, second.body
        third = await buy(there, refused[1], sale["sale_id"])
        assert third.status == 409 and third.error["code"] == "sold_out"
    assert all(finding.holds for finding in await verify(here.config.db_path))


@pytest.mark.sqlite_only
async def test_sold_out_is_answered_without_the_database(mall, shop):
    sale = await start_sale(mall, shop, quantity=1)
    winner, loser = await mall.api.login("winner"), await mall.api.login("loser")
    assert (await buy(mall.api, winner, sale["sale_id"])).status == 201
    # Another connection holds the write lock: an answer that needed a write transaction
    # would wait out the busy timeout and fail; the sold-out answer comes from memory.
    lock = sqlite3.connect(mall.config.db_path, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        refused = await buy(mall.api, loser, sale["sale_id"])
        assert refused.status == 409 and refused.error["code"] == "sold_out"
    finally:
        lock.execute("ROLLBACK")
        lock.close()


async def test_an_unpaid_flash_order_expires_fast_and_its_unit_goes_back_on_sale(start_mall):
    # 60x: the sale's 30 simulated seconds to pay are half a real second; the mall's own
    # orders would hold for 15 minutes (15 real seconds).
    mall = await start_mall(clock=Clock.parse("2026-11-27T21:00+08:00@60"))
    shop = await open_shop(mall, stock=5)
    sale = await start_sale(mall, shop, quantity=1, pay_within_seconds=30)
    first = await mall.api.login("slow-payer")
    order = await buy(mall.api, first, sale["sale_id"])
    assert order.status == 201
    second = await mall.api.login("quick-payer")
    assert (await buy(mall.api, second, sale["sale_id"])).error["code"] == "sold_out"
    for _ in range(50):
        await asyncio.sleep(0.1)
        view = await mall.api.get(f"/api/v1/orders/{order.body['order_id']}", token=first)
        if view.body["status"] == "expired":
            break
    assert view.body["status"] == "expired", view.body
    await asyncio.sleep(0.25)
    retry = await buy(mall.api, second, sale["sale_id"])
    assert retry.status == 201, retry.body
    assert all(finding.holds for finding in await verify(mall.config.db_path))


async def test_a_script_tapping_buy_in_a_loop_is_held_back_by_the_shipped_rule(start_mall):
    mall = await start_mall(risk_rules=SHIPPED)
    shop = await open_shop(mall)
    sale = await start_sale(mall, shop, quantity=5)
    bot, person = await mall.api.login("bot"), await mall.api.login("person")
    taps = [await buy(mall.api, bot, sale["sale_id"]) for _ in range(22)]
    assert [tap.status for tap in taps] == [201] + [409] * 19 + [429] * 2
    assert {tap.error["code"] for tap in taps[1:20]} == {"flash_sale_limit_reached"}
    assert taps[-1].error["code"] == "rate_limited" and "Retry-After" in taps[-1].headers
    assert (await buy(mall.api, person, sale["sale_id"])).status == 201
    assert await mall.api.metric(
        'mall_risk_rejections_total{rule="flash-buys-per-account"}') == 2
    # Once the sale is sold out, taps are answered at the door: they cost nothing to hold
    # back, so risk control never sees them.
    gone = await start_sale(mall, shop, quantity=1)
    assert (await buy(mall.api, person, gone["sale_id"])).status == 201
    late = [await buy(mall.api, await mall.api.login("crowd"), gone["sale_id"])
            for _ in range(25)]
    assert {tap.status for tap in late} == {409}

