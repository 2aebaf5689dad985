"""The set of services one mall instance runs, built once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from shared.clock import Clock

from ..auth import TokenSigner
from ..config import MallConfig
from ..metrics import MallMetrics
from ..payer_client import PayerClient
from ..storage import Database
from .accounts import Accounts
from .after_sales import AfterSales
from .catalogue import Catalogue
from .coupons import Coupons
from .discovery import Discovery
from .experiments import Experiments
from .flash_sales import FlashSales
from .group_buys import GroupBuys
from .membership import Membership
from .orders import Orders
from .payments import Payments
from .personal_data import PersonalData
from .pickup import Pickup
from .store_kpis import StoreKpis
from .stores import Stores


@dataclass
class Services:
    config: MallConfig
    clock: Clock
    db: Database
    metrics: MallMetrics
    signer: TokenSigner
    accounts: Accounts
    personal_data: PersonalData
    stores: Stores
    catalogue: Catalogue
    discovery: Discovery
    orders: Orders
    coupons: Coupons
    membership: Membership
    experiments: Experiments
    flash_sales: FlashSales
    group_buys: GroupBuys
    pickup: Pickup
    payments: Payments
    after_sales: AfterSales
    store_kpis: StoreKpis
    payer: PayerClient | None


SERVICES = web.AppKey("services", Services)
