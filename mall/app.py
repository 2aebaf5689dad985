"""The app factory: the aiohttp demos' shape (factory, route table, startup/cleanup
context), with every resource opened on startup and closed on cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from aiohttp import web

from . import __version__, keys, openapi
from .access_log import METRICS, access_log_context, metrics_middleware
from .auth import TokenSigner
from .config import MallConfig
from .errors import error_middleware
from .faults import ActiveFaults
from .metrics import MallMetrics
from .pricing import stored
from .privacy import Vault
from .routes import ROUTES, setup_routes
from .services.accounts import Accounts
from .services.catalogue import Catalogue
from .services.catalogue_cache import CatalogueCache
from .services.orders import Orders
from .services.payment_sandbox import SandboxPayer
from .services.payments import Payments
from .services.personal_data import PersonalData
from .services.pickup import Pickup
from .services.registry import SERVICES, Services
from .services.stores import Stores
from .storage import Database
from .wechatpay import PlatformSigner

log = logging.getLogger("mall")
CONFIG = web.AppKey("config", MallConfig)
FAULTS = web.AppKey("faults", ActiveFaults)


async def open_services(config: MallConfig, metrics: MallMetrics,
                        faults: ActiveFaults | None = None) -> Services:
    """Open the database and build every service on it (also used by `xingcheng token`)."""
    clock = config.clock
    price = faults.price if faults is not None else stored
    db = Database(config.db_path, clock, config.read_connections)
    await db.open()
    server_keys = await db.transaction(keys.load)
    signer = TokenSigner(server_keys.token_secret)
    platform = PlatformSigner(server_keys.platform_private_key, server_keys.platform_serial)
    apiv3_key = server_keys.apiv3_key
    cache = CatalogueCache()
    orders = Orders(db, clock, metrics, config.order_ttl_seconds, cache, price)
    sandbox = (SandboxPayer(db, clock, platform, apiv3_key, config.notify_url)
               if config.payment_sandbox else None)
    vault = Vault(server_keys.vault_key)
    accounts = Accounts(db, clock, signer, vault, config.token_ttl_seconds)
    await accounts.refresh_deleted()
    return Services(
        config=config, clock=clock, db=db, metrics=metrics, signer=signer,
        accounts=accounts, personal_data=PersonalData(db, clock, vault, accounts),
        stores=Stores(db, clock),
        catalogue=Catalogue(db, clock, cache, price),
        orders=orders,
        pickup=Pickup(db, clock, metrics, orders, config.pickup_code_attempts),
        payments=Payments(db, clock, metrics, orders, platform.verifier(), apiv3_key,
                          config.notification_window_seconds),
        sandbox=sandbox,
    )


async def _sweeper(services: Services) -> None:
    """Expire unpaid orders, audit the stock that changed since the last look, notice
    accounts deleted by another process, and checkpoint the WAL off the request path."""
    audited_from = services.clock.stamp()
    while True:
        await asyncio.sleep(services.config.expiry_sweep_interval)
        try:
            await services.orders.expire_due()
            now = services.clock.stamp()
            await services.orders.audit_stock(audited_from)
            audited_from = now
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
    if services.sandbox is not None:
        await services.sandbox.start()
    sweeper = asyncio.create_task(_sweeper(services))
    log.info("mall ready on %s (clock %s)", services.db.path, services.clock.describe())
    yield
    sweeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sweeper
    if services.sandbox is not None:
        await services.sandbox.stop()
    await services.db.close()


def create_app(config: MallConfig | None = None) -> web.Application:
    config = config or MallConfig()
    middlewares = [metrics_middleware, error_middleware]
    faults = ActiveFaults(config.faults) if config.faults is not None else None
    if faults is not None:  # inside the metrics, so the mall's own histograms show it
        middlewares.append(faults.middleware)
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=middlewares)
    app[CONFIG] = config
    app[METRICS] = MallMetrics()
    app[METRICS].build_info.labels(__version__, os.environ.get("XINGCHENG_BUILD_COMMIT",
                                                               "unknown"),
                                   faults.name if faults else "none").set(1)
    if faults is not None:
        app[FAULTS] = faults
    app[openapi.OPENAPI] = openapi.build(ROUTES, __version__)
    setup_routes(app)
    if config.access_log:
        app.cleanup_ctx.append(access_log_context)
    app.cleanup_ctx.append(_resources)
    return app
