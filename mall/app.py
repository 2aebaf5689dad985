"""The app factory: the aiohttp demos' shape (factory, route table, startup/cleanup
context), with every resource opened on startup and closed on cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from aiohttp import web

from shared.clock import Clock
from shared.wechatpay import Keyring

from . import __version__, keys, openapi
from .access_log import METRICS, access_log_context, metrics_middleware
from .auth import TokenSigner
from .config import MallConfig
from .dashboard_page import setup_dashboard
from .errors import error_middleware
from .experiments import SHIPPED as SHIPPED_EXPERIMENTS
from .experiments import load_experiments
from .faults import ActiveFaults
from .front_door import front_door
from .member_levels import SHIPPED as SHIPPED_MEMBERSHIP
from .member_levels import load_membership
from .metrics import MallMetrics
from .payer_client import PayerClient
from .pricing import stored
from .privacy import Vault
from .risk_control import SHIPPED as SHIPPED_RULES
from .risk_control import RiskControl, load_rules
from .routes import ROUTES, route_names, setup_routes
from .scenes import load_scenes
from .services.accounts import Accounts
from .services.after_sales import AfterSales
from .services.catalogue import Catalogue
from .services.catalogue_cache import CatalogueCache
from .services.coupons import Coupons
from .services.discovery import Discovery
from .services.experiments import Experiments
from .services.flash_sales import FlashSales
from .services.group_buys import GroupBuys
from .services.membership import Membership
from .services.orders import Orders
from .services.payments import Payments
from .services.personal_data import PersonalData
from .services.pickup import Pickup
from .services.registry import SERVICES, Services
from .services.store_kpis import StoreKpis
from .services.stores import Stores
from .services.write_once import WriteOnce
from .shared_limits import SharedWindows
from .shedding import LoadShedder
from .storage import settings as stored_settings
from .storage.database import Connection
from .storage.engines import database_for

log = logging.getLogger("mall")
CLOCK_ANCHOR = "clock_anchor"
CONFIG = web.AppKey("config", MallConfig)
FAULTS = web.AppKey("faults", ActiveFaults)


async def open_services(config: MallConfig, metrics: MallMetrics,
                        faults: ActiveFaults | None = None) -> Services:
    """Open the database and build every service on it (also used by `xingcheng token`)."""
    clock = config.clock
    price = faults.price if faults is not None else stored
    db = database_for(config.db_path, clock, read_connections=config.read_connections,
                      pool_size=config.pool_size, pool_timeout=config.pool_timeout_seconds)
    await db.open()
    if clock.simulated:
        await db.transaction(lambda conn: _anchor_clock(conn, clock, config.resume_clock))
    server_keys = await db.transaction(keys.load)
    signer = TokenSigner(server_keys.token_secret)
    cache = CatalogueCache(db)
    facts = WriteOnce()
    coupons = Coupons(db, clock, metrics, facts)
    membership = Membership(db, clock, metrics,
                            load_membership(config.membership or SHIPPED_MEMBERSHIP))
    orders = Orders(db, clock, metrics, config.order_ttl_seconds, coupons, membership, facts,
                    price)
    keyring = (Keyring.load_or_create(config.payer_keys) if config.payer_keys is not None
               else None)
    payer = (PayerClient(config.payer_url.rstrip("/"), keyring.merchant_signer(), keyring.appid,
                         clock) if config.payer_url and keyring is not None else None)
    vault = Vault(server_keys.vault_key)
    accounts = Accounts(db, clock, signer, vault, config.token_ttl_seconds, facts)
    await accounts.refresh_deleted()
    payments = Payments(db, clock, metrics, orders,
                        keyring.platform_verifier() if keyring else None,
                        keyring.apiv3_key.encode() if keyring else b"",
                        config.notification_window_seconds, payer,
                        config.payment_query_after_seconds)
    after_sales = AfterSales(db, clock, metrics, orders, payer,
                             config.payment_query_after_seconds)
    payments.refunds = after_sales
    return Services(
        config=config, clock=clock, db=db, metrics=metrics, signer=signer,
        accounts=accounts, personal_data=PersonalData(db, clock, vault, accounts),
        stores=Stores(db, clock),
        catalogue=Catalogue(db, clock, metrics, cache, price),
        discovery=Discovery(db, clock, metrics, load_scenes(), cache, price),
        orders=orders,
        coupons=coupons,
        membership=membership,
        experiments=Experiments(load_experiments(config.experiments or SHIPPED_EXPERIMENTS),
                                clock, metrics),
        flash_sales=FlashSales(db, clock, metrics, orders, config.flash_sale_recheck_seconds),
        pickup=Pickup(db, clock, metrics, orders, config.pickup_code_attempts),
        payments=payments,
        after_sales=after_sales,
        group_buys=GroupBuys(db, clock, metrics, orders, after_sales),
        store_kpis=StoreKpis(db, clock),
        payer=payer,
    )


async def _anchor_clock(conn: Connection, clock: Clock, resume: bool) -> None:
    anchor = clock.settle(await stored_settings.get(conn, CLOCK_ANCHOR), resume, log)
    if anchor is not None:
        await stored_settings.put(conn, CLOCK_ANCHOR, anchor)


async def _sweeper(services: Services) -> None:
    """Expire unpaid orders, fail the group buys whose time is up, settle payments and
    refunds the payer has not confirmed, earn the points another build's payments missed,
    audit the stock that changed since the last look (those in one worker of several: they
    are the database's, not this process's), index the products another writer changed,
    notice accounts deleted by another process, and checkpoint the WAL off the request
    path."""
    audited_from = services.clock.stamp()
    while True:
        await asyncio.sleep(services.config.expiry_sweep_interval)
        try:
            if services.config.sweeps_database:
                await services.orders.expire_due()
                await services.payments.reconcile_due()
                await services.group_buys.fail_due()
                await services.after_sales.reconcile_due()
                await services.membership.earn_missed()
                now = services.clock.stamp()
                await services.orders.audit_stock(audited_from)
                audited_from = now
            await services.store_kpis.visits.flush()
            await services.discovery.reindex_stale()
            await services.accounts.refresh_deleted()
            await services.db.checkpoint()
        except Exception:
            log.exception("sweep failed; will try again")


async def _resources(app: web.Application) -> AsyncIterator[None]:
    faults = app.get(FAULTS)
    if faults is not None:
        faults.announce()
    services = await open_services(app[CONFIG], app[METRICS], faults)
    app[SERVICES] = services
    if services.payer is not None:
        await services.payer.start()
    sweeper = asyncio.create_task(_sweeper(services))
    log.info("mall ready on %s (clock %s, anchor %s)", services.db.path,
             services.clock.describe(), services.clock.anchor())
    yield
    sweeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sweeper
    if services.payer is not None:
        await services.payer.stop()
    await services.store_kpis.visits.flush()
    await services.db.close()


def create_app(config: MallConfig | None = None) -> web.Application:
    config = config or MallConfig()
    metrics = MallMetrics()
    # The flash-sale door and shedding inside the metrics (what they answer is counted and
    # timed), before any handler or fault runs (a shed request does nothing).
    shedder = None
    if config.shed_target_seconds is not None:
        shedder = LoadShedder(config.shed_target_seconds, config.shed_interval_seconds,
                              metrics)
    middlewares = [metrics_middleware, front_door(shedder), error_middleware]
    faults = (ActiveFaults(config.faults, route_names()) if config.faults is not None
              else None)
    if faults is not None:  # inside the metrics, so the mall's own histograms show it
        middlewares.append(faults.middleware)
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=middlewares)
    app[CONFIG] = config
    app[METRICS] = metrics
    app[METRICS].build_info.labels(__version__, os.environ.get("XINGCHENG_BUILD_COMMIT",
                                                               "unknown"),
                                   faults.name if faults else "none").set(1)
    if faults is not None:
        app[FAULTS] = faults
    app[openapi.OPENAPI] = openapi.build(ROUTES, __version__)
    shared = (SharedWindows(config.redis_url, metrics, config.redis_prefix)
              if config.redis_url else None)
    setup_dashboard(app)
    setup_routes(app, RiskControl(load_rules(config.risk_rules or SHIPPED_RULES), metrics,
                                  shared))
    if shared is not None:
        app.on_cleanup.append(lambda _app: shared.close())
    if config.access_log:
        app.cleanup_ctx.append(access_log_context)
    app.cleanup_ctx.append(_resources)
    if shedder is not None:
        app.cleanup_ctx.append(_measuring(shedder))
    return app


def _measuring(shedder: LoadShedder):
    """Startup/cleanup: the shedder's probe of the loop runs while the app serves."""
    async def context(app: web.Application) -> AsyncIterator[None]:
        shedder.start()
        yield
        shedder.stop()
    return context
