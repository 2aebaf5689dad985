"""Risk-control limits shared by several processes through Redis (`serve --redis URL`):
two malls on one database, as two workers or two instances behind a balancer, admit what
one would; without Redis each keeps its own windows, as the README says."""

from __future__ import annotations

import asyncio
import secrets

from .conftest import open_shop, order_body
from .test_abuse import RULES

REDIS = "redis://127.0.0.1:6379/0"


async def two_malls(start_mall, tmp_path, **settings):
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES, encoding="utf-8")
    first = await start_mall(risk_rules=rules, **settings)
    second = await start_mall(risk_rules=rules, db_path=first.config.db_path,
                              payer=None, **settings)
    return first, second


async def hoard(first, second) -> list[int]:
    """Eight orders by one account, alternating between the two malls; their statuses."""
    shop = await open_shop(first, stock=100)
    hoarder = await first.api.login("hoarder")
    replies = await asyncio.gather(*(
        (first if n % 2 else second).api.post("/api/v1/orders", token=hoarder,
                                              json=order_body(shop)) for n in range(8)))
    return sorted(reply.status for reply in replies)


async def test_with_redis_two_malls_admit_what_one_would(start_mall, tmp_path):
    prefix = f"test:{secrets.token_hex(4)}"   # this test's keys, whatever else Redis holds
    first, second = await two_malls(start_mall, tmp_path, redis_url=REDIS, redis_prefix=prefix)
    assert await hoard(first, second) == [201] * 3 + [429] * 5
    refused = [await mall.api.metric('mall_risk_rejections_total{rule="orders-per-account"}')
               for mall in (first, second)]
    assert sum(refused) == 5 and all(refused)


async def test_without_redis_each_mall_counts_its_own(start_mall, tmp_path):
    first, second = await two_malls(start_mall, tmp_path)
    assert await hoard(first, second) == [201] * 6 + [429] * 2


async def test_redis_away_admits_and_counts_it(start_mall, tmp_path):
    first, second = await two_malls(start_mall, tmp_path, redis_url="redis://127.0.0.1:1/0")
    assert await hoard(first, second) == [201] * 8
    assert await first.api.metric("mall_risk_store_errors_total") >= 1
