"""Membership through the real mall and the real payment sandbox: points earned when an
order is paid, redeemed as a discount, given back when it closes unpaid, reversed when it
is refunded; levels by spending; member prices; and a ledger that always adds up."""

from __future__ import annotations

import asyncio

import pytest

from mall.member_levels import MembershipRulesError, load_membership
from mall.verification import verify

from .conftest import open_shop, order_body, paid_order
from .data_files import refusal
from .test_refunds import ask, decide, order_status

# Generous points so a test can earn enough to redeem in one order: 100 points a yuan at
# 普通, 200 from 30 yuan spent (银卡); a point is worth a fen; points pay at most half.
RULES = """
fen_per_point = 1
max_points_percent = 50
[[level]]
key = "regular"
name = "普通会员"
from_spent_yuan = 0
points_per_10_yuan = 1000
[[level]]
key = "silver"
name = "银卡会员"
from_spent_yuan = 30
points_per_10_yuan = 2000
"""


@pytest.fixture
async def mall(start_mall, tmp_path):
    rules = tmp_path / "membership.toml"
    rules.write_text(RULES, encoding="utf-8")
    return await start_mall(membership=rules)


async def me(mall, customer: str) -> dict:
    view = await mall.api.get("/api/v1/me/membership", token=customer)
    assert view.status == 200, view.body
    return view.body


async def ledger(mall, customer: str) -> list[dict]:
    view = await mall.api.get("/api/v1/me/points", token=customer)
    assert view.status == 200, view.body
    return view.body["items"]


async def points_hold(mall) -> None:
    findings = {f.name: f for f in await verify(mall.config.db_path)}
    assert findings["points_match_ledger"].holds, findings["points_match_ledger"].rows
    assert all(f.holds for f in findings.values()), [f for f in findings.values() if not f.holds]


async def test_paying_earns_points_and_spending_raises_the_level(mall, shop):
    customer = await mall.api.login("member-1")
    before = await me(mall, customer)
    assert before["member"] is False and before["points"] == 0 and before["level"] == "regular"
    assert before["next_level"]["level"] == "silver"
    assert before["next_level"]["spend_more_fen"] == 3000
    await paid_order(mall, shop, customer)                     # 18 yuan at 100 points a yuan
    after = await me(mall, customer)
    assert after["member"] is True and after["points"] == 1800
    assert after["spent_fen"] == 1800 and after["level"] == "regular"
    await paid_order(mall, shop, customer)                     # 36 yuan spent: silver now
    after = await me(mall, customer)
    assert after["level"] == "silver" and after["name"] == "银卡会员"
    assert after["points"] == 3600                             # earned at the level it had
    assert after["next_level"] is None
    await paid_order(mall, shop, customer)                     # silver earns 200 a yuan
    assert (await me(mall, customer))["points"] == 3600 + 3600
    rows = await ledger(mall, customer)
    assert [(r["reason"], r["points"], r["balance"]) for r in rows] == [
        ("earned", 3600, 7200), ("earned", 1800, 3600), ("earned", 1800, 1800)]
    levels = await mall.api.get("/api/v1/member-levels")
    assert [lv["level"] for lv in levels.body["levels"]] == ["regular", "silver"]
    await points_hold(mall)


async def test_points_pay_part_of_an_order_and_come_back_when_it_is_cancelled(mall, shop):
    customer = await mall.api.login("member-2")
    await paid_order(mall, shop, customer)                     # 1800 points
    placed = await mall.api.post("/api/v1/orders", token=customer,
                                 json=order_body(shop, points=500))
    assert placed.status == 201, placed.body
    assert placed.body["points_used"] == 500 and placed.body["points_fen"] == 500
    assert placed.body["total_fen"] == 1800 - 500
    assert (await me(mall, customer))["points"] == 1300
    view = await mall.api.get(f"/api/v1/orders/{placed.body['order_id']}", token=customer)
    assert view.body["points_used"] == 500 and view.body["total_fen"] == 1300
    cancelled = await mall.api.post(f"/api/v1/orders/{placed.body['order_id']}/cancel",
                                    token=customer)
    assert cancelled.status == 200, cancelled.body
    assert (await me(mall, customer))["points"] == 1800
    assert [r["reason"] for r in await ledger(mall, customer)] == [
        "returned", "redeemed", "earned"]
    await points_hold(mall)


async def test_points_misuse_is_refused_naming_the_field(mall, shop):
    customer = await mall.api.login("member-3")
    await paid_order(mall, shop, customer)                     # 1800 points
    cases = [({"points": 1801}, 409, "not_enough_points"),     # more than I have
             ({"points": 901}, 409, "points_over_limit"),      # over half of 1800 fen
             ({"points": 0}, 400, None), ({"points": -5}, 400, None),
             ({"points": "many"}, 400, None)]
    for extra, status, code in cases:
        answer = await mall.api.post("/api/v1/orders", token=customer,
                                     json=order_body(shop, **extra))
        assert answer.status == status, (extra, answer.body)
        assert answer.body["error"]["field"] == "points", answer.body
        if code:
            assert answer.body["error"]["code"] == code
    over = await mall.api.post("/api/v1/orders", token=customer,
                               json=order_body(shop, points=901))
    assert over.body["error"]["max_points"] == 900
    stranger = await mall.api.login("no-points")
    none = await mall.api.post("/api/v1/orders", token=stranger,
                               json=order_body(shop, points=1))
    assert none.status == 409 and none.body["error"]["code"] == "not_enough_points"
    assert (await me(mall, customer))["points"] == 1800       # nothing was spent
    await points_hold(mall)


async def test_concurrent_orders_cannot_spend_the_same_points_twice(mall):
    shop = await open_shop(mall, stock=50, price_fen=10_000)
    customer = await mall.api.login("member-4")
    await paid_order(mall, shop, customer)                     # 10,000 points
    answers = await asyncio.gather(*[
        mall.api.post("/api/v1/orders", token=customer, json=order_body(shop, points=4000))
        for _ in range(6)])
    placed = [a for a in answers if a.status == 201]
    refused = [a for a in answers if a.status == 409]
    assert len(placed) == 2 and len(refused) == 4, [a.body for a in answers]
    assert {a.body["error"]["code"] for a in refused} == {"not_enough_points"}
    assert (await me(mall, customer))["points"] == 2000
    await points_hold(mall)


async def test_a_refund_reverses_earned_points_and_returns_redeemed_ones(mall, shop):
    customer = await mall.api.login("member-5")
    first = await paid_order(mall, shop, customer)              # +1800, spent 1800
    second = await paid_order(mall, shop, customer, points=900)  # -900, pays 900: +900
    assert (await me(mall, customer))["points"] == 1800 - 900 + 900
    assert (await me(mall, customer))["spent_fen"] == 2700
    await ask(mall, customer, second)
    assert (await decide(mall, shop, second)).status == 200
    await order_status(mall, customer, second, ("refunded",))
    after = await me(mall, customer)
    assert after["points"] == 1800 and after["spent_fen"] == 1800
    # Points earned and then spent are reversed all the same: the balance goes below zero.
    spend = await mall.api.post("/api/v1/orders", token=customer,
                                json=order_body(shop, qty=2, points=1800))
    assert spend.status == 201, spend.body
    await ask(mall, customer, first)
    assert (await decide(mall, shop, first)).status == 200
    await order_status(mall, customer, first, ("refunded",))
    after = await me(mall, customer)
    assert after["points"] == -1800 and after["spent_fen"] == 0
    reasons = [r["reason"] for r in await ledger(mall, customer)]
    assert reasons.count("reversed") == 2 and reasons.count("returned") == 1
    refused = await mall.api.post("/api/v1/orders", token=customer,
                                  json=order_body(shop, points=1))
    assert refused.status == 409 and refused.body["error"]["code"] == "not_enough_points"
    await points_hold(mall)


async def test_a_repeated_payment_earns_once(mall, shop):
    customer = await mall.api.login("member-6")
    order_id = await paid_order(mall, shop, customer)
    svc = mall.services
    order = await svc.db.reader().execute_fetchall(
        "SELECT id, user_id, total_fen FROM orders WHERE id = ?", (order_id,))
    for _ in range(3):  # what a second notification or a racing query would ask for
        await svc.db.transaction(lambda conn: svc.membership.earn(conn, order[0],
                                                                  svc.clock.stamp()))
    assert (await me(mall, customer))["points"] == 1800
    assert [r["reason"] for r in await ledger(mall, customer)] == ["earned"]


async def test_member_prices_by_level(mall, shop):
    url = f"/api/v1/merchant/stores/{shop.store_id}/member-prices/{shop.sku_id}"
    put = await mall.api.put(url, token=shop.merchant,
                             json={"price_fen": 1500, "min_level": "silver"})
    assert put.status == 200, put.body
    listed = await mall.api.get(f"/api/v1/stores/{shop.store_id}/member-prices")
    assert [(i["sku_id"], i["member_price_fen"], i["min_level"])
            for i in listed.body["items"]] == [(shop.sku_id, 1500, "silver")]
    product = await mall.api.get(f"/api/v1/stores/{shop.store_id}/products/{shop.product_id}")
    assert product.body["skus"][0]["member_price_fen"] == 1500
    assert product.body["skus"][0]["member_level"] == "silver"
    customer = await mall.api.login("member-7")
    regular = await mall.api.post("/api/v1/orders", token=customer, json=order_body(shop))
    assert regular.body["total_fen"] == 1800                  # not silver yet: list price
    await mall.api.post(f"/api/v1/orders/{regular.body['order_id']}/cancel", token=customer)
    await paid_order(mall, shop, customer, qty=2)             # 36 yuan: silver now
    silver = await mall.api.post("/api/v1/orders", token=customer, json=order_body(shop))
    assert silver.body["total_fen"] == 1500
    view = await mall.api.get(f"/api/v1/orders/{silver.body['order_id']}", token=customer)
    assert view.body["lines"][0]["unit_price_fen"] == 1500
    dropped = await mall.api.delete(url, token=shop.merchant)
    assert dropped.status == 200, dropped.body
    again = await mall.api.post("/api/v1/orders", token=customer, json=order_body(shop))
    assert again.body["total_fen"] == 1800
    audit = await mall.api.get(f"/api/v1/merchant/stores/{shop.store_id}/audit-log",
                               token=shop.merchant)
    actions = [entry["action"] for entry in audit.body["items"]]
    assert "member_price.set" in actions and "member_price.drop" in actions
    await points_hold(mall)


async def test_member_price_misuse(mall, shop):
    base = f"/api/v1/merchant/stores/{shop.store_id}/member-prices"
    cases = [({"price_fen": 1800}, 400, "not_below_price", "price_fen"),
             ({"price_fen": 0}, 400, None, "price_fen"),
             ({"price_fen": 1500, "min_level": "platinum"}, 400, "unknown_level", "min_level")]
    for body, status, code, field in cases:
        answer = await mall.api.put(f"{base}/{shop.sku_id}", token=shop.merchant, json=body)
        assert answer.status == status and answer.body["error"]["field"] == field, answer.body
        if code:
            assert answer.body["error"]["code"] == code
    other = await open_shop(mall, merchant_openid="merchant-2", name="别家")
    foreign = await mall.api.put(f"{base}/{other.sku_id}", token=shop.merchant,
                                 json={"price_fen": 100})
    assert foreign.status == 404 and foreign.body["error"]["field"] == "sku_id"
    customer = await mall.api.login("not-staff")
    forbidden = await mall.api.put(f"{base}/{shop.sku_id}", token=customer,
                                   json={"price_fen": 100})
    assert forbidden.status == 403
    missing = await mall.api.delete(f"{base}/{shop.sku_id}", token=shop.merchant)
    assert missing.status == 404


async def test_verify_finds_a_balance_changed_without_its_ledger(mall, shop):
    customer = await mall.api.login("member-8")
    await paid_order(mall, shop, customer)
    await points_hold(mall)
    await mall.sql("UPDATE members SET points = points + 5")
    findings = {f.name: f for f in await verify(mall.config.db_path)}
    assert findings["points_match_ledger"].breaches == 1
    assert findings["points_match_ledger"].rows[0]["breach"] == "balance_not_ledger"


@pytest.mark.parametrize(("text", "names"), [
    ('[[level]]\nkey = "a"\nname = "A"\nfrom_spent_yuan = 10\npoints_per_10_yuan = 1\n',
     "first level must start"),
    ('[[level]]\nkey = "a"\nname = "A"\nfrom_spent_yuan = 0\npoints_per_10_yuan = -1\n',
     "level.0.points_per_10_yuan"),
    ('fen_per_point = 0\n[[level]]\nkey = "a"\nname = "A"\nfrom_spent_yuan = 0\n'
     'points_per_10_yuan = 1\n', "fen_per_point"),
    ('[[level]]\nkey = "a"\nname = "A"\nfrom_spent_yuan = 0\npoints_per_10_yuan = 1\n'
     '[[level]]\nkey = "a"\nname = "B"\nfrom_spent_yuan = 5\npoints_per_10_yuan = 1\n',
     "share a key"),
    ('level = []\n', "level"),
])
def test_a_bad_membership_file_is_refused_naming_the_field(tmp_path, text, names):
    assert names in refusal(tmp_path, "m.toml", text, load_membership, MembershipRulesError)


async def test_an_order_an_older_build_paid_earns_at_the_next_sweep(mall, shop):
    """In a gray release an older build beside this one pays orders without earning points
    (it knows nothing of them); this build's sweeper finds such orders among those paid
    since it last looked and earns them, once."""
    customer = await mall.api.login("member-9")
    placed = await mall.api.post("/api/v1/orders", token=customer, json=order_body(shop))
    order_id = placed.body["order_id"]
    await mall.sql("UPDATE orders SET status = 'paid', paid_at = ?, pickup_code = '123456'"
                   " WHERE id = ?", mall.services.clock.stamp(), order_id)  # an older build's
    for _ in range(300):
        if (await me(mall, customer))["points"]:
            break
        await asyncio.sleep(0.02)
    mine = await me(mall, customer)
    assert (mine["points"], mine["spent_fen"]) == (1800, 1800)
    await asyncio.sleep(0.3)                            # more sweeps: still earned once
    assert [r["reason"] for r in await ledger(mall, customer)] == ["earned"]
    findings = {f.name: f for f in await verify(mall.config.db_path)}
    assert findings["points_match_ledger"].holds, findings["points_match_ledger"].rows
