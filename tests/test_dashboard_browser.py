"""The store operations dashboard (/merchant/) as a merchant uses it, in Debian's Chromium:
a generated city after a short real load, a merchant logs in with a sandbox code and reads
the tiles, which equal the day recomputed here in SQL; an order paid now shows up in the
pickup queue; nothing but the mall on 127.0.0.1 is asked for, no console error; another
store's merchant is refused.  Screenshots at phone and desktop widths go to test-output/."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from .browser import CHROMIUM, watched_page
from .test_cli import call, serving
from .test_run import scenario_and_city, xingcheng

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"
DAY = ("2026-11-27T00:00:00.000+08:00", "2026-11-28T00:00:00.000+08:00")
pytestmark = [
    pytest.mark.slow,  # a real load, then Chromium
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="Debian's chromium is missing (.ci/run installs it)")]


def yuan(fen: int | None) -> str:
    return "-" if fen is None else f"¥{fen / 100:,.2f}"


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def tiles_from_sql(db: Path, store_id: int) -> dict[str, str]:
    """What the day's tiles must say, recomputed from the tables."""
    with sqlite3.connect(db) as conn:
        gmv, paid = conn.execute("SELECT COALESCE(SUM(total_fen), 0), COUNT(*) FROM orders"
                                 " WHERE store_id = ? AND paid_at >= ? AND paid_at < ?",
                                 (store_id, *DAY)).fetchone()
        visits, = conn.execute("SELECT COUNT(*) FROM store_visits WHERE store_id = ?"
                               " AND hour >= ? AND hour < ?", (store_id, *DAY)).fetchone()
        refunds, = conn.execute(
            "SELECT COUNT(*) FROM refunds r JOIN orders o ON o.id = r.order_id WHERE"
            " o.store_id = ? AND r.status = 'succeeded' AND r.settled_at >= ?"
            " AND r.settled_at < ?", (store_id, *DAY)).fetchone()
        firsts = conn.execute(
            "SELECT MIN(paid_at) FROM orders WHERE store_id = ? AND paid_at < ?"
            " GROUP BY user_id HAVING MAX(paid_at) >= ?", (store_id, DAY[1], DAY[0])).fetchall()
    new = sum(1 for (first,) in firsts if first >= DAY[0])
    return {"t-gmv": yuan(gmv), "t-orders": str(paid),
            "t-aov": yuan(gmv // paid if paid else None),
            "t-conversion": percent(paid / visits if visits else None),
            "t-customers": f"{new} / {len(firsts) - new}",
            "t-refunds": f"{refunds}（{percent(refunds / paid if paid else None)}）"}


def pay_an_order(base: str, payer: str, db: Path, store_id: int) -> int:
    """A customer of the city orders one in-stock item for pickup and pays, now."""
    with sqlite3.connect(db) as conn:
        sku_id, = conn.execute("SELECT sku_id FROM inventory WHERE store_id = ? AND"
                               " on_hand - reserved > 0 ORDER BY sku_id LIMIT 1",
                               (store_id,)).fetchone()
    status, login = call(f"{base}/api/v1/auth/wx-login", "POST", {"code": "sandbox:watcher"})
    assert status == 200, login
    token = login["token"]
    status, order = call(f"{base}/api/v1/orders", "POST", {
        "store_id": store_id, "lines": [{"sku_id": sku_id, "qty": 1}],
        "fulfilment": "pickup"}, token)
    assert status == 201, order
    status, pay = call(f"{base}/api/v1/orders/{order['order_id']}/pay", "POST", None, token)
    assert status == 201, pay
    status, done = call(f"{payer}/sandbox/payments/{pay['prepay_id']}/complete", "POST",
                        {"result": "success"})
    assert status == 202, done
    return order["order_id"]


def test_a_merchant_reads_the_dashboard_of_a_living_store(tmp_path, env):
    scenario, db = scenario_and_city(tmp_path, env, "dashboard")
    keys = str(tmp_path / "payment-keys.json")
    OUTPUT.mkdir(exist_ok=True)
    with serving(tmp_path / "payer.db", "--keys", keys, command="paysandbox", env=env) as payer, \
            serving(db, "--clock", "2026-11-27T22:20+08:00@40", "--no-access-log",
                    "--payer", payer, "--payer-keys", keys, env=env) as base:
        result = xingcheng(["run", str(scenario), "--target", base, "--reports",
                            str(tmp_path / "reports")], env, tmp_path)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        with sqlite3.connect(db) as conn:   # the busiest store of the load, and another
            (store_id, merchant), (other_store, other) = conn.execute(
                "SELECT o.store_id, (SELECT MIN(u.openid) FROM store_staff f JOIN users u"
                " ON u.id = f.user_id WHERE f.store_id = o.store_id) FROM orders o"
                " WHERE o.paid_at >= ? GROUP BY o.store_id"
                " ORDER BY COUNT(*) DESC, o.store_id LIMIT 2", (DAY[0],)).fetchall()
        with watched_page(1366, 900) as (page, seen):
            page.goto(f"{base}/merchant/")
            page.fill("#openid", merchant)
            page.click("button[type=submit]")
            page.wait_for_selector("#board:not([hidden])")
            page.fill("#day", "2026-11-27")
            page.dispatch_event("#day", "change")
            page.wait_for_function("document.querySelectorAll('.main-svg').length >= 4")
            order_id = pay_an_order(base, payer, db, store_id)
            page.wait_for_selector(f"#queue tr[data-order='{order_id}']", timeout=15_000)
            expected = tiles_from_sql(db, store_id)   # the paid order is in them
            page.dispatch_event("#day", "change")     # the KPIs are read again
            page.wait_for_function("want => document.getElementById('t-gmv').innerText"
                                   " === want", arg=expected["t-gmv"], timeout=10_000)
            shown = {tile: page.inner_text(f"#{tile}") for tile in (
                "t-gmv", "t-orders", "t-aov", "t-conversion", "t-customers", "t-refunds")}
            assert shown == expected
            assert int(shown["t-orders"]) > 1
            assert page.locator("#store option").count() >= 1
            page.screenshot(path=str(OUTPUT / "dashboard-desktop.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            time.sleep(0.5)
            page.screenshot(path=str(OUTPUT / "dashboard-phone.png"), full_page=True)
            wide = page.evaluate("document.documentElement.scrollWidth")
            assert wide <= 390, f"the phone layout scrolls sideways ({wide} px)"
            assert seen["errors"] == []
            # Another store's merchant logs in and asks for this store: refused (which
            # Chromium logs as a failed load, the one error expected).
            page.click("#logout")
            page.wait_for_selector("#login:not([hidden])")
            page.fill("#openid", other)
            page.click("button[type=submit]")
            page.wait_for_selector("#board:not([hidden])")
            refused = page.evaluate(
                "id => fetch(`/api/v1/merchant/stores/${id}/kpis`, {headers: "
                "{Authorization: 'Bearer ' + sessionStorage.getItem('xc-token')}})"
                ".then(r => r.status)", store_id)
            assert refused == 403
            assert other_store != store_id
    assert seen["errors"] == ["Failed to load resource: the server responded with a status "
                              "of 403 (Forbidden)"]
    outside = [url for url in seen["requests"] if not url.startswith(base + "/")]
    assert outside == [], outside
    for shot in ("dashboard-desktop.png", "dashboard-phone.png"):
        print(f"screenshot: {OUTPUT / shot}")
