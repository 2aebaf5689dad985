"""Fault profiles through the real server: slower routes, injected errors that write
nothing, higher prices everywhere a customer looks and pays, loud announcements, a bad
profile refused by `xingcheng serve`, and no change at all without a profile."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from scipy.stats import binom

from mall import __version__
from mall.app import create_app
from mall.config import MallConfig
from mall.faults import ActiveFaults, FaultProfile, load_profile
from mall.routes import route_names

from .conftest import Mall, open_shop, order_body
from .test_cli import XINGCHENG, serving

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "scenarios" / "faults"
PRODUCTS = "GET /api/v1/stores/{store_id}/products"
CREATE = "POST /api/v1/orders"
PAY = "POST /api/v1/orders/{order_id}/pay"


def profile(seed: int = 3, **faults) -> FaultProfile:
    return FaultProfile.model_validate({"name": "rehearsal", "seed": seed, **faults})


def active(faults: FaultProfile) -> ActiveFaults:
    return ActiveFaults(faults, route_names())


async def count_rows(mall: Mall, table: str) -> int:
    return (await mall.sql(f"SELECT count(*) FROM {table}"))[0][0]


def read_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return reply.read().decode()


def binomial_bounds(n: int, p: float) -> tuple[float, float]:
    """Where Binomial(n, p) lands but once in a million runs."""
    return binom.interval(1 - 1e-6, n, p)


async def test_added_latency_on_its_route_is_inside_the_measured_part(start_mall):
    mall = await start_mall(faults=profile(latency=[{"route": PRODUCTS, "fixed_ms": 60}]))
    shop = await open_shop(mall)
    for _ in range(3):
        started = time.perf_counter()
        assert (await mall.api.get(f"/api/v1/stores/{shop.store_id}/products")).status == 200
        assert time.perf_counter() - started >= 0.06
    assert (await mall.api.get(f"/api/v1/stores/{shop.store_id}")).status == 200
    # The mall's own histogram saw every slow request (lower bound only), the other not held.
    labels = 'method="GET",route="/api/v1/stores/{store_id}/products",status_class="2xx"'
    assert await mall.api.metric(f'mall_http_request_duration_seconds_count{{{labels}}}') == 3
    fast = f'mall_http_request_duration_seconds_bucket{{le="0.05",{labels}}}'
    assert await mall.api.metric(fast) == 0


def test_latency_draws_follow_their_distribution_share_and_seed():
    """The draws themselves (2000 each, seeded, so these figures are exact per seed)."""
    n = 2000

    def draws(latency: dict, seed: int = 3) -> list[float]:
        faults = active(profile(seed, latency=[{"route": CREATE, **latency}]))
        return [faults.delay(CREATE) * 1000 for _ in range(n)]

    lognormal = draws({"lognormal": {"median_ms": 30, "sigma": 0.3}})
    assert 28 <= statistics.median(lognormal) <= 32 and min(lognormal) > 0
    uniform = draws({"uniform": {"low_ms": 10, "high_ms": 20}})
    assert min(uniform) >= 10 and max(uniform) <= 20 and 14.5 <= statistics.mean(uniform) <= 15.5
    exponential = draws({"exponential": {"mean_ms": 40}})
    assert 36 <= statistics.mean(exponential) <= 44
    shared = draws({"fixed_ms": 25, "share": 0.2})
    low, high = binomial_bounds(n, 0.2)
    assert set(shared) == {0, 25} and low <= shared.count(25) <= high
    assert draws({"fixed_ms": 25, "share": 0.2}) == shared           # a rehearsal replays
    assert draws({"fixed_ms": 25, "share": 0.2}, seed=4) != shared
    assert active(profile(latency=[{"route": CREATE, "fixed_ms": 5}])).delay(PAY) == 0


async def test_injected_errors_land_at_their_rate_and_write_nothing(start_mall):
    n, rate, stock = 300, 0.2, 1000
    mall = await start_mall(faults=profile(errors=[{"route": CREATE, "rate": rate}]))
    shop = await open_shop(mall, stock=stock)
    customer = await mall.api.login("unlucky")
    replies = [await mall.api.post("/api/v1/orders", token=customer, json=order_body(shop))
               for _ in range(n)]
    refused = [r for r in replies if r.status == 503]
    created = [r for r in replies if r.status == 201]
    assert len(refused) + len(created) == n
    low, high = binomial_bounds(n, rate)
    assert low <= len(refused) <= high, len(refused)
    assert refused[0].body == {"error": {"code": "injected_fault", "field": None,
                                         "message": "fault profile rehearsal: injected error"}}
    # A refused order left no trace: no order row, no reserved stock, not counted.
    assert await count_rows(mall, "orders") == len(created)
    level = await mall.api.get(f"/api/v1/merchant/stores/{shop.store_id}/inventory/"
                               f"{shop.sku_id}", token=shop.merchant)
    assert level.body["available"] == stock - len(created)
    assert level.body["reserved"] == len(created)
    assert await mall.api.metric('mall_orders_total{change="created"}') == len(created)
    route = 'method="POST",route="/api/v1/orders",status_class="5xx"'
    assert await mall.api.metric(
        f"mall_http_request_duration_seconds_count{{{route}}}") == len(refused)


async def test_a_refused_payment_writes_no_payment_and_a_rehearsal_replays(start_mall):
    statuses = []
    for seed in (5, 5, 6):
        mall = await start_mall(faults=profile(seed, errors=[{"route": PAY, "rate": 0.5,
                                                               "status": 502}]))
        shop = await open_shop(mall, stock=100)
        customer = await mall.api.login("payer")
        replies = []
        for _ in range(40):
            order = await mall.api.post("/api/v1/orders", token=customer, json=order_body(shop))
            replies.append(await mall.api.post(f"/api/v1/orders/{order.body['order_id']}/pay",
                                               token=customer))
        statuses.append([r.status for r in replies])
        assert set(statuses[-1]) == {201, 502}
        assert await count_rows(mall, "payments") == statuses[-1].count(201)
    assert statuses[0] == statuses[1] and statuses[0] != statuses[2]


async def test_prices_change_in_catalogue_detail_and_what_orders_charge(start_mall):
    mall = await start_mall(faults=profile(prices=[{"factor": 1.15, "skus": "all"}]))
    shop = await open_shop(mall, price_fen=50)   # 57.5 fen rounds half up to 58
    served = 58
    for _ in range(2):   # the second page comes from the catalogue cache
        page = await mall.api.get(f"/api/v1/stores/{shop.store_id}/products")
        assert page.body["items"][0]["skus"][0]["price_fen"] == served
    detail = await mall.api.get(f"/api/v1/stores/{shop.store_id}/products/{shop.product_id}")
    assert detail.body["skus"][0]["price_fen"] == served
    customer = await mall.api.login("payer")
    order = await mall.api.post("/api/v1/orders", token=customer, json=order_body(shop, 3))
    assert order.status == 201 and order.body["total_fen"] == 3 * served
    order_id = order.body["order_id"]
    view = await mall.api.get(f"/api/v1/orders/{order_id}", token=customer)
    assert view.body["total_fen"] == 3 * served
    assert [line["unit_price_fen"] for line in view.body["lines"]] == [served]
    pay = await mall.api.post(f"/api/v1/orders/{order_id}/pay", token=customer)
    assert pay.status == 201 and pay.body["amount_fen"] == 3 * served


async def test_prices_change_on_listed_skus_only(start_mall):
    mall = await start_mall(faults=profile(prices=[{"factor": 0.9, "skus": [2]}]))
    shop = await open_shop(mall, price_fen=1000)
    other = await mall.api.post(f"/api/v1/merchant/stores/{shop.store_id}/products",
                                token=shop.merchant, json={"name": "糖油粑粑", "price_fen": 1000})
    assert (shop.sku_id, other.body["sku_id"]) == (1, 2)
    page = await mall.api.get(f"/api/v1/stores/{shop.store_id}/products")
    prices = {s["sku_id"]: s["price_fen"] for p in page.body["items"] for s in p["skus"]}
    assert prices == {1: 1000, 2: 900}


def test_a_share_of_skus_is_chosen_stably_by_seed():
    def changed(seed: int) -> set[int]:
        faults = active(profile(seed, prices=[{"factor": 2, "share": 0.3}]))
        return {sku for sku in range(1, 2001) if faults.price(sku, 100) == 200}

    low, high = binomial_bounds(2000, 0.3)
    assert low <= len(changed(3)) <= high
    assert changed(3) == changed(3) and changed(3) != changed(4)


def test_prices_round_half_up_in_fen_and_never_to_nothing():
    # Floats would give 57 (50 * 1.15 = 57.49999...), 28 (30 * 0.95) and 0.
    cases = [(1.15, 50, 58), (0.95, 30, 29), (1.1, 1805, 1986), (0.01, 10, 1), (1.0, 1, 1)]
    for factor, stored, served in cases:
        assert active(profile(prices=[{"factor": factor}])).price(7, stored) == served


async def test_no_profile_no_middleware_no_change_and_build_info_says_which(start_mall,
                                                                            monkeypatch):
    assert len(create_app(MallConfig()).middlewares) + 1 == len(
        create_app(MallConfig(faults=profile(prices=[{"factor": 2}]))).middlewares)
    monkeypatch.delenv("XINGCHENG_BUILD_COMMIT", raising=False)
    plain = await start_mall()
    shop = await open_shop(plain, price_fen=1805)
    page = await plain.api.get(f"/api/v1/stores/{shop.store_id}/products")
    assert page.body["items"][0]["skus"][0]["price_fen"] == 1805
    customer = await plain.api.login("payer")
    order = await plain.api.post("/api/v1/orders", token=customer, json=order_body(shop, 2))
    assert order.body["total_fen"] == 3610
    assert await plain.api.metric(
        f'mall_build_info{{commit="unknown",faults="none",version="{__version__}"}}') == 1
    monkeypatch.setenv("XINGCHENG_BUILD_COMMIT", "0123abc")
    rehearsal = await start_mall(faults=profile(prices=[{"factor": 1.1}]))
    info = [line for line in (await rehearsal.api.metrics()).splitlines()
            if line.startswith("mall_build_info{")]
    assert info == [f'mall_build_info{{commit="0123abc",faults="rehearsal",'
                    f'version="{__version__}"}} 1.0']


def test_shipped_profiles_load():
    names = {path.stem: load_profile(path).name for path in SHIPPED.glob("*.toml")}
    assert names == {"slow-orders": "slow-orders", "payment-errors": "payment-errors",
                     "price-up": "price-up", "heavy": "heavy"}


@pytest.mark.parametrize("text, field", [
    ('[[errors]]\nroute = "POST /api/v1/nowhere"\nrate = 0.1\n', "errors.0.route"),
    ('[[errors]]\nroute = "POST /api/v1/orders"\nrat = 0.1\n', "errors.0.rat"),
    ('[[prices]]\nfactor = -1\n', "prices.0.factor"),
    ('[[latency]]\nroute = "POST /api/v1/orders"\nuniform = {low_ms = 9, high_ms = 1}\n',
     "latency.0.uniform"),
])
def test_serve_refuses_a_bad_profile_naming_file_and_field(tmp_path, text, field):
    bad = tmp_path / "bad.toml"
    bad.write_text(f'name = "bad"\n{text}', encoding="utf-8")
    result = subprocess.run([*XINGCHENG, "serve", "--db", str(tmp_path / "m.db"), "--port",
                             "0", "--faults", str(bad)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"{bad}: {field}:" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m.db").exists()


def test_serve_warns_about_every_fault_and_exports_build_info(tmp_path):
    log = tmp_path / "serve.log"
    env = {**os.environ, "XINGCHENG_BUILD_COMMIT": "feedbeef"}
    with log.open("w") as out, serving(tmp_path / "m.db", "--faults",
                                       str(SHIPPED / "slow-orders.toml"), env=env,
                                       log=out) as base:
        metrics = read_text(f"{base}/metrics")
    assert (f'mall_build_info{{commit="feedbeef",faults="slow-orders",'
            f'version="{__version__}"}} 1.0') in metrics
    warnings = [line for line in log.read_text().splitlines() if " WARNING " in line]
    assert "FAULT PROFILE ACTIVE: slow-orders" in warnings[0]
    assert warnings[1].endswith("FAULT latency on POST /api/v1/orders: lognormal median 30 ms, "
                                "sigma 0.3, on 100% of requests")
