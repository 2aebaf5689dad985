"""Fault profiles through the real server: slower routes, injected errors that write
nothing, higher prices everywhere a customer looks and pays, and loud announcements."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from mall.faults import FaultProfile

from .conftest import open_shop, order_body
from .test_cli import XINGCHENG

ROOT = Path(__file__).resolve().parent.parent


def profile(**faults) -> FaultProfile:
    return FaultProfile.model_validate({"name": "rehearsal", "seed": 3, **faults})


async def test_added_latency_on_one_route_only(start_mall):
    mall = await start_mall(faults=profile(latency=[
        {"route": "GET /api/v1/stores/{store_id}/products", "fixed_ms": 60}]))
    shop = await open_shop(mall)
    started = time.perf_counter()
    assert (await mall.api.get(f"/api/v1/stores/{shop.store_id}/products")).status == 200
    assert time.perf_counter() - started >= 0.06
    started = time.perf_counter()
    assert (await mall.api.get(f"/api/v1/stores/{shop.store_id}")).status == 200
    assert time.perf_counter() - started < 0.06
    # The mall's own histogram saw the slow route (inside the measured part).
    text = await mall.api.metrics()
    slow = [line for line in text.splitlines() if line.startswith(
        'mall_http_request_duration_seconds_bucket{le="0.05",method="GET",'
        'route="/api/v1/stores/{store_id}/products"')]
    assert slow and float(slow[0].split()[-1]) == 0


async def test_injected_errors_refuse_before_writing(start_mall):
    mall = await start_mall(faults=profile(errors=[
        {"route": "POST /api/v1/orders", "rate": 0.5, "status": 503}]))
    shop = await open_shop(mall, stock=500)
    customer = await mall.api.login("unlucky")
    statuses = [(await mall.api.post("/api/v1/orders", token=customer,
                                     json=order_body(shop))) for _ in range(200)]
    refused = [r for r in statuses if r.status == 503]
    created = [r for r in statuses if r.status == 201]
    assert len(refused) + len(created) == 200
    assert 70 <= len(refused) <= 130          # Binomial(200, 0.5): beyond ±4 sigma
    assert refused[0].error["code"] == "injected_fault"
    level = await mall.api.get(f"/api/v1/merchant/stores/{shop.store_id}/inventory/"
                               f"{shop.sku_id}", token=shop.merchant)
    assert level.body["available"] == 500 - len(created)
    created_metric = [line for line in (await mall.api.metrics()).splitlines()
                      if line.startswith('mall_orders_total{change="created"}')]
    assert float(created_metric[0].split()[-1]) == len(created)


async def test_prices_change_in_catalogue_detail_and_what_orders_charge(start_mall):
    mall = await start_mall(faults=profile(prices=[{"factor": 1.1, "skus": "all"}]))
    shop = await open_shop(mall, price_fen=1805)   # 1985.5 rounds half up to 1986
    page = await mall.api.get(f"/api/v1/stores/{shop.store_id}/products")
    assert page.body["items"][0]["skus"][0]["price_fen"] == 1986
    detail = await mall.api.get(f"/api/v1/stores/{shop.store_id}/products/{shop.product_id}")
    assert detail.body["skus"][0]["price_fen"] == 1986
    customer = await mall.api.login("payer")
    order = await mall.api.post("/api/v1/orders", token=customer, json=order_body(shop, 2))
    assert order.status == 201 and order.body["total_fen"] == 2 * 1986
    view = await mall.api.get(f"/api/v1/orders/{order.body['order_id']}", token=customer)
    assert view.body["total_fen"] == 3972


async def test_no_profile_no_change_and_build_info_says_which(start_mall):
    plain = await start_mall()
    shop = await open_shop(plain, price_fen=1805)
    page = await plain.api.get(f"/api/v1/stores/{shop.store_id}/products")
    assert page.body["items"][0]["skus"][0]["price_fen"] == 1805
    assert 'faults="none"' in await plain.api.metrics()
    rehearsal = await start_mall(faults=profile(prices=[{"factor": 1.1}]))
    info = [line for line in (await rehearsal.api.metrics()).splitlines()
            if line.startswith("mall_build_info{")]
    assert len(info) == 1 and 'faults="rehearsal"' in info[0] and info[0].endswith(" 1.0")


def test_serve_warns_loudly_and_refuses_a_bad_profile(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[[errors]]\nroute = "POST /api/v1/nowhere"\nrate = 0.1\n')
    result = subprocess.run([*XINGCHENG, "serve", "--db", str(tmp_path / "m.db"), "--port",
                             "0", "--faults", str(bad)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2 and "errors.0.route" in result.stderr
    bad.write_text('name = "bad"\n[[prices]]\nfactor = -1\n')
    result = subprocess.run([*XINGCHENG, "serve", "--db", str(tmp_path / "m.db"), "--port",
                             "0", "--faults", str(bad)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2 and "prices.0.factor" in result.stderr
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([*XINGCHENG, "serve", "--db", str(tmp_path / "m.db"), "--port",
                                 "0", "--faults",
                                 str(ROOT / "scenarios" / "faults" / "payment-errors.toml")],
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            for _ in range(100):
                if "FAULT errors" in log.read_text():
                    break
                time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    text = log.read_text()
    assert "WARNING" in text and "FAULT PROFILE ACTIVE: payment-errors" in text
    assert "FAULT errors on POST /api/v1/orders/{order_id}/pay: 1.00% answered 503" in text
