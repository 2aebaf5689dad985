"""Two malls on one database, as a baseline and a canary serve it in a gray release: one in
this process, one a real `xingcheng serve` process, on the same SQLite file."""

from __future__ import annotations

import asyncio

from mall.storage.engines import database_for
from mall.verification import verify
from shared.clock import Clock

from .api import Api
from .conftest import open_shop, order_body, rows_of
from .test_cli import serving


async def test_a_change_through_one_process_shows_at_once_in_the_others_cache(start_mall):
    here = await start_mall()
    shop = await open_shop(here, stock=10)
    with serving(here.config.db_path) as base:
        there = Api(base, here.api.session)
        catalogue = f"/api/v1/stores/{shop.store_id}/products"

        async def available(api: Api) -> list[int]:
            page = await api.get(catalogue)
            assert page.status == 200, page.body
            return [k["available"] for p in page.body["items"] for k in p["skus"]]

        assert await available(there) == [10]
        assert await available(there) == [10]  # now cached over there
        assert await available(here.api) == [10]  # and here
        await here.api.put(f"/api/v1/merchant/stores/{shop.store_id}/inventory/{shop.sku_id}",
                           token=shop.merchant, json={"stock": 4})
        assert await available(there) == [4]
        customer = await there.login("shopper")
        order = await there.post("/api/v1/orders", token=customer, json=order_body(shop, 3))
        assert order.status == 201, order.body
        assert await available(here.api) == [1]
        assert await available(there) == [1]
        cancelled = await here.api.post(f"/api/v1/orders/{order.body['order_id']}/cancel",
                                        token=customer)
        assert cancelled.status == 200, cancelled.body
        assert await available(there) == [4]
        added = await here.api.post(f"/api/v1/merchant/stores/{shop.store_id}/products",
                                    token=shop.merchant, json={"name": "臭豆腐", "price_fen": 900})
        assert added.status == 201, added.body
        assert await available(there) == [4, 0]


async def test_what_each_process_keeps_for_good_is_only_what_it_found(start_mall):
    """Stores, staff bindings and order lines are kept by each mall after one read
    (mall/services/write_once.py): what was not there yet must not be kept as absent."""
    here = await start_mall()
    shop = await open_shop(here)
    with serving(here.config.db_path) as base:
        there = Api(base, here.api.session)
        clerk = await there.login("clerk-to-be")
        queue = f"/api/v1/merchant/stores/{shop.store_id}/orders"
        refused = await there.get(queue, token=clerk)
        assert refused.status == 403, refused.body
        staff = await here.api.post(f"/api/v1/admin/stores/{shop.store_id}/staff",
                                    token=shop.operator, json={"openid": "clerk-to-be"})
        assert staff.status in (200, 201), staff.body
        let_in = await there.get(queue, token=clerk)
        assert let_in.status == 200, let_in.body

        customer = await there.login("first-customer")
        unknown = await there.post("/api/v1/orders", token=customer,
                                   json={**order_body(shop), "store_id": shop.store_id + 1})
        assert unknown.status == 404, unknown.body
        second = await open_shop(here, merchant_openid="merchant-2", name="南门口糖油粑粑")
        assert second.store_id == shop.store_id + 1
        order = await there.post("/api/v1/orders", token=customer, json=order_body(second, 2))
        assert order.status == 201, order.body
        order_id = order.body["order_id"]
        for api in (there, here.api, there):   # placed there, read here, then kept there
            view = await api.get(f"/api/v1/orders/{order_id}", token=customer)
            assert view.status == 200, view.body
            assert [(line["sku_id"], line["qty"], line["unit_price_fen"])
                    for line in view.body["lines"]] == [(second.sku_id, 2, second.price_fen)]


async def test_two_processes_racing_for_the_last_units_never_oversell(start_mall):
    here = await start_mall()
    shop = await open_shop(here, stock=15)
    payer = ("--payer", here.payer.base_url, "--payer-keys", str(here.config.payer_keys))
    with serving(here.config.db_path, *payer) as base:
        there = Api(base, here.api.session)
        customers = [await here.api.login(f"racer-{n}") for n in range(40)]

        async def buy(api: Api, token: str, key: str | None = None):
            headers = {"Idempotency-Key": key} if key else None
            return await api.post("/api/v1/orders", token=token, json=order_body(shop),
                                  headers=headers)

        replies = await asyncio.gather(*(buy(here.api if n % 2 else there, token)
                                         for n, token in enumerate(customers)))
        statuses = sorted(reply.status for reply in replies)
        assert statuses.count(201) == 15 and statuses.count(409) == 25, statuses
        assert {reply.status for reply in replies if reply.status != 201} == {409}

        # One idempotency key sent to both at once makes one order.
        restock = await there.put(
            f"/api/v1/merchant/stores/{shop.store_id}/inventory/{shop.sku_id}",
            token=shop.merchant, json={"stock": 30})
        assert restock.status == 200, restock.body
        twice = await asyncio.gather(buy(here.api, customers[0], "same-tap"),
                                     buy(there, customers[0], "same-tap"))
        assert {reply.status for reply in twice} <= {200, 201}, twice
        assert len({reply.body["order_id"] for reply in twice}) == 1, twice

        # Each paid through either mall, at one payer: each settled once, whoever hears.
        made = [reply.body["order_id"] for reply in replies if reply.status == 201]
        for n, order_id in enumerate(made):
            api = there if n % 2 else here.api
            token = customers[[r.body.get("order_id") for r in replies].index(order_id)]
            pay = await api.post(f"/api/v1/orders/{order_id}/pay", token=token)
            assert pay.status == 201, pay.body
            done = await here.payer.post(f"/sandbox/payments/{pay.body['prepay_id']}/complete",
                                         json={"result": "success"})
            assert done.status == 202, done.body
        for _ in range(300):
            paid = await here.services.db.reader().execute_fetchall(
                "SELECT count(*) FROM orders WHERE status = 'paid'")
            if paid[0][0] == len(made):
                break
            await asyncio.sleep(0.02)
        assert paid[0][0] == len(made) == 15

    breaches = [f for f in await verify(here.config.db_path) if not f.holds]
    assert not breaches, breaches


async def test_malls_starting_at_once_on_a_new_database_migrate_it_once(new_database):
    for attempt in range(5):
        target = await new_database(f"fresh{attempt}")
        malls = [database_for(target, Clock()) for _ in range(4)]
        await asyncio.gather(*(db.open() for db in malls))
        for db in malls:
            await db.close()
        versions = [row[0] for row in await rows_of(target, "SELECT version FROM"
                                                            " schema_migrations")]
        assert versions == sorted(set(versions)) and len(versions) >= 6
