"""`xingcheng verify`: a mall whose orders went through every state verifies clean; each
invariant, broken on purpose in a copy of that file, is reported by name with the rows that
break it (exit 1); a generated city verifies clean; a file that is no mall is exit 2."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from mall.storage import postgres_databases

from .conftest import execute_on, open_shop, order_body, paid_order, rows_of
from .test_cli import XINGCHENG
from .test_coupons import issue_coupon
from .test_flash_sales import start_sale
from .test_refunds import ask, decide, order_status


def verify(db: Path | str) -> tuple[int, dict[str, dict]]:
    done = subprocess.run([*XINGCHENG, "verify", "--db", str(db), "--json"],
                          capture_output=True, text=True, timeout=60)
    findings = {f["name"]: f for f in json.loads(done.stdout)} if done.stdout.strip() else {}
    return done.returncode, findings


async def orders_in_every_state(mall) -> dict[str, int]:
    """A store's orders: unpaid, paid, ready, picked up (after ready, and straight from
    paid), out for delivery, delivered, cancelled and expired; stock set by hand twice."""
    shop = await open_shop(mall, stock=50)
    api, states = mall.api, {}
    customer = await api.login("everyone")
    store = f"/api/v1/merchant/stores/{shop.store_id}/orders"
    states["paid"] = await paid_order(mall, shop, customer)
    states["ready"] = await paid_order(mall, shop, customer, qty=2)
    assert (await api.post(f"{store}/{states['ready']}/ready", token=shop.merchant)).status == 200
    states["picked_up"] = await paid_order(mall, shop, customer)
    await api.post(f"{store}/{states['picked_up']}/ready", token=shop.merchant)
    code = (await api.get(f"/api/v1/orders/{states['picked_up']}", token=customer)
            ).body["pickup_code"]
    done = await api.post(f"{store}/{states['picked_up']}/pickup", token=shop.merchant,
                          json={"code": code})
    assert done.status == 200, done.body
    # Collected before staff marked it ready (a quick customer, a busy clerk): no 'ready'.
    states["collected_unready"] = await paid_order(mall, shop, customer)
    code = (await api.get(f"/api/v1/orders/{states['collected_unready']}", token=customer)
            ).body["pickup_code"]
    done = await api.post(f"{store}/{states['collected_unready']}/pickup",
                          token=shop.merchant, json={"code": code})
    assert done.status == 200, done.body
    address = (await api.post("/api/v1/me/addresses", token=customer, json={
        "contact_name": "王芳", "phone": "13973112345", "district": "开福区",
        "detail": "四方坪 凯乐国际城 3 栋"})).body["id"]
    for key in ("out", "delivered"):
        order = await api.post("/api/v1/orders", token=customer, json={
            **order_body(shop), "fulfilment": "delivery", "address_id": address})
        states[key] = order.body["order_id"]
        pay = await api.post(f"/api/v1/orders/{states[key]}/pay", token=customer)
        await mall.payer.post(f"/sandbox/payments/{pay.body['prepay_id']}/complete",
                              json={"result": "success"})
        for _ in range(200):
            view = await api.get(f"/api/v1/orders/{states[key]}", token=customer)
            if view.body["status"] == "paid":
                break
            await asyncio.sleep(0.01)
        assert (await api.post(f"{store}/{states[key]}/dispatch", token=shop.merchant)
                ).status == 200
    assert (await api.post(f"{store}/{states['delivered']}/delivered", token=shop.merchant)
            ).status == 200
    coupon = await issue_coupon(mall, shop, threshold_fen=0, kind="fixed")
    states["coupon_template"] = coupon["template_id"]
    claimed = await api.post(f"/api/v1/coupons/{coupon['template_id']}/claim", token=customer)
    states["coupon_order"] = await paid_order(mall, shop, customer,
                                              coupon_id=claimed.body["coupon_id"])
    states["cancelled"] = (await api.post("/api/v1/orders", token=customer,
                                          json=order_body(shop))).body["order_id"]
    await api.post(f"/api/v1/orders/{states['cancelled']}/cancel", token=customer)
    await api.put(f"/api/v1/merchant/stores/{shop.store_id}/inventory/{shop.sku_id}",
                  token=shop.merchant, json={"stock": 60})
    states["pending"] = (await api.post("/api/v1/orders", token=customer,
                                        json=order_body(shop))).body["order_id"]
    states["refunded"] = await paid_order(mall, shop, customer)
    await ask(mall, customer, states["refunded"])
    await decide(mall, shop, states["refunded"])
    await order_status(mall, customer, states["refunded"], ("refunded",))
    sale = await start_sale(mall, shop, quantity=3)
    states["flash_sale"] = sale["sale_id"]
    flash = f"/api/v1/flash-sales/{sale['sale_id']}/orders"
    states["flash_order"] = (await api.post(flash, token=customer, json={})).body["order_id"]
    other = await api.login("second-hunter")
    states["flash_cancelled"] = (await api.post(flash, token=other, json={})).body["order_id"]
    await api.post(f"/api/v1/orders/{states['flash_cancelled']}/cancel", token=other)
    states["sku"], states["store"] = shop.sku_id, shop.store_id
    return states


# The snapshot's bytes and order ids, made by the first test that asks (it takes seconds:
# an order has to expire) and copied for each after it, since each may break its copy.
_SNAPSHOT: list[tuple[Path | str, dict[str, int]]] = []


@pytest.fixture
async def verified_file(start_mall, copy_database, tmp_path_factory, session_databases
                        ) -> tuple[Path | str, dict[str, int]]:
    """A snapshot of a mall with orders in every state, one of them expired by the sweeper
    (TTL 1.5 s: it is made first and waited for; the unpaid one is made last)."""
    if not _SNAPSHOT:
        mall, states = await _snapshot(start_mall)
        await mall.server.close()   # nothing connected: a template may be copied
        source = mall.config.db_path
        if isinstance(source, Path):
            kept = (await copy_database(source, "snapshot")).replace(
                tmp_path_factory.mktemp("snapshot") / "snapshot.db")
        else:
            kept = await postgres_databases.create(postgres_databases.split(source)[0],
                                                   "snapshot", template=source)
            session_databases.append(kept)
        _SNAPSHOT.append((kept, states))
    snapshot, states = _SNAPSHOT[0]
    return await copy_database(snapshot, "verified"), dict(states)


async def _snapshot(start_mall):
    mall = await start_mall(order_ttl_seconds=1.5)
    shop = await open_shop(mall, stock=5, name="过期测试店")
    customer = await mall.api.login("late")
    expiring = (await mall.api.post("/api/v1/orders", token=customer, json=order_body(shop))
                ).body["order_id"]
    for _ in range(100):
        view = await mall.api.get(f"/api/v1/orders/{expiring}", token=customer)
        if view.body["status"] == "expired":
            break
        await asyncio.sleep(0.05)
    assert view.body["status"] == "expired"
    return mall, {**await orders_in_every_state(mall), "expired": expiring}


async def test_a_mall_with_orders_in_every_state_verifies_clean(verified_file):
    db, _ = verified_file
    code, findings = verify(db)
    assert code == 0, {k: v for k, v in findings.items() if v["breaches"]}
    assert len(findings) == 12 and all(f["breaches"] == 0 for f in findings.values())
    reasons = {row[0] for row in await rows_of(db, "SELECT reason FROM inventory_ledger")}
    assert reasons >= {"stock_set", "reserve", "release", "hand_over"}


# case: (the invariant it breaks, the corruption, the column naming the row, which row)
BREAKS = {
    "stock_bumped": ("stock_adds_up", "UPDATE inventory SET on_hand = on_hand + 5"
                     " WHERE sku_id = {sku}", "sku_id", "sku"),
    "reserved_off": ("reserved_is_held", "UPDATE inventory SET reserved = reserved + 1"
                     " WHERE sku_id = {sku}", "sku_id", "sku"),
    "hand_over_lost": ("orders_match_ledger", "DELETE FROM inventory_ledger"
                       " WHERE order_id = {picked_up} AND reason = 'hand_over'",
                       "order_id", "picked_up"),
    "payment_lost": ("paid_once", "DELETE FROM payments WHERE order_id = {paid}",
                     "order_id", "paid"),
    "left_unpaid": ("no_overdue_unpaid", "UPDATE orders SET expires_at ="
                    " '2000-01-01T00:00:00.000+08:00' WHERE id = {pending}",
                    "order_id", "pending"),
    "ready_unaudited": ("staff_changes_audited", "DELETE FROM audit_log"
                        " WHERE action = 'order.ready' AND target_id = '{ready}'",
                        "target", "ready"),
    "product_unaudited": ("staff_changes_audited", "DELETE FROM audit_log"
                          " WHERE action = 'product.create' AND target_id = '{sku}'",
                          "target", "sku"),
    "coupon_unaudited": ("staff_changes_audited", "DELETE FROM audit_log"
                         " WHERE action = 'coupon.create' AND target_id = '{coupon_template}'",
                         "target", "coupon_template"),
    "coupon_discount_off": ("coupons_add_up", "UPDATE user_coupons SET discount_fen ="
                            " discount_fen + 1 WHERE order_id = {coupon_order}",
                            "order_id", "coupon_order"),
    "coupon_claims_off": ("coupons_add_up", "UPDATE coupon_templates SET claimed = claimed - 1"
                          " WHERE id = {coupon_template}", "template_id", "coupon_template"),
    "refund_amount_off": ("refunds_match_payments", "UPDATE refunds SET amount_fen ="
                          " amount_fen + 1 WHERE order_id = {refunded}", "order_id", "refunded"),
    "refund_lost": ("refunds_match_payments", "DELETE FROM refunds WHERE order_id = {refunded}",
                    "order_id", "refunded"),
    "flash_unaudited": ("staff_changes_audited", "DELETE FROM audit_log"
                        " WHERE action = 'flash_sale.create' AND target_id = '{flash_sale}'",
                        "target", "flash_sale"),
    "flash_taken_off": ("flash_sales_add_up", "UPDATE flash_sales SET taken = taken + 1"
                        " WHERE id = {flash_sale}", "sale_id", "flash_sale"),
    "flash_price_off": ("flash_sales_add_up", "UPDATE order_lines SET unit_price_fen ="
                        " unit_price_fen + 100 WHERE order_id = {flash_order}",
                        "order_id", "flash_order"),
    "flash_unit_kept": ("flash_sales_add_up", "UPDATE flash_sale_orders SET returned_at = NULL"
                        " WHERE order_id = {flash_cancelled}", "order_id", "flash_cancelled"),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
async def test_each_broken_invariant_is_named_with_its_rows(verified_file, case):
    db, states = verified_file
    invariant, sql, column, which = BREAKS[case]
    await execute_on(db, sql.format(**states))
    code, findings = verify(db)
    assert code == 1
    assert findings[invariant]["breaches"] >= 1
    assert states[which] in [row[column] for row in findings[invariant]["rows"]]


@pytest.mark.slow  # generates a city
def test_a_generated_city_verifies_clean_and_a_file_that_is_no_mall_cannot(tmp_path):
    city = tmp_path / "city.db"
    subprocess.run([*XINGCHENG, "city", "generate", "--preset", "small", "--seed", "3",
                    "--db", str(city)], check=True, capture_output=True, timeout=300)
    assert verify(city)[0] == 0
    (tmp_path / "junk.db").write_text("not a database")
    assert verify(tmp_path / "junk.db")[0] == 2
    assert verify(tmp_path / "missing.db")[0] == 2
