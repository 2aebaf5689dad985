"""The route table: every endpoint, who may call it, and what it takes.

The same table builds the router, enforces access and writes the OpenAPI document, so the
three cannot drift apart.  Access levels:
  public    anyone
  user      any logged-in user (customer, merchant or operator)
  operator  operators only
  store     staff of the `{store_id}` in the path, or an operator
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel

from . import schemas, validation
from .auth import PRINCIPAL, bearer_token
from .errors import Forbidden, Unauthorized
from .handlers import (
    accounts,
    admin,
    after_sales,
    browse,
    coupons,
    discovery,
    experiments,
    flash_sales,
    group_buys,
    membership,
    merchant,
    ops,
    orders,
    payments,
)
from .risk_control import RiskControl
from .services.registry import SERVICES

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    access: str
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int = 200
    tag: str = "mall"
    # Other success statuses the handler may answer with, and what each means.
    also: tuple[tuple[int, str], ...] = ()
    # OpenAPI links from the success response to what a client does next with it: (name,
    # the next operation's id, its parameters as runtime expressions).  A stateful fuzzer
    # follows them (create an order, pay it, read it), as the mini-program does.
    links: tuple[tuple[str, str, dict[str, str]], ...] = ()
    response: type[BaseModel] | None = None
    # A deleted account's token still reaches this route (so a repeated deletion answers
    # as the first did); every other route answers it 401.
    after_deletion: bool = False


V1 = "/api/v1"
S = f"{V1}/merchant/stores/{{store_id}}"
NEW_ORDER = {"order_id": "$response.body#/order_id"}
NEW_SKU = {"store_id": "$request.path.store_id", "sku_id": "$response.body#/sku_id"}

ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", ops.healthz, "public", "Liveness", tag="ops"),
    Route("GET", "/readyz", ops.readyz, "public", "Readiness: the database answers", tag="ops"),
    Route("GET", "/metrics", ops.metrics, "public", "Prometheus metrics", tag="ops"),
    Route("GET", f"{V1}/openapi.json", ops.openapi, "public", "This document", tag="ops"),
    Route("POST", f"{V1}/auth/wx-login", accounts.wx_login, "public",
          "Mini-program login: exchange a wx.login code for a session token", schemas.WxLogin,
          tag="auth"),
    Route("GET", f"{V1}/me/data", accounts.my_data, "user",
          "A copy of everything the mall keeps about me (PIPL: know and copy)",
          tag="me", response=schemas.MyDataOut),
    Route("DELETE", f"{V1}/me", accounts.delete_me, "user",
          "Delete my account: personal data anonymized, orders kept without it; 409 while "
          "an order is under way (PIPL: delete)", tag="me", response=schemas.AccountDeletedOut,
          after_deletion=True),
    Route("GET", f"{V1}/me/experiments", experiments.mine, "user",
          "My arm of each A/B experiment running now (a stable hash of my account; the "
          "mini-program reads them at launch)", tag="me", response=schemas.MyExperimentsOut),
    Route("GET", f"{V1}/me/addresses", accounts.list_addresses, "user", "My addresses",
          tag="me"),
    Route("POST", f"{V1}/me/addresses", accounts.add_address, "user", "Add a delivery address",
          schemas.AddressIn, status=201, tag="me"),
    Route("GET", f"{V1}/me/addresses/{{address_id}}", accounts.get_address, "user",
          "One of my addresses", tag="me"),
    Route("POST", f"{V1}/admin/stores", admin.create_store, "operator",
          "Onboard a store (its counter pickup point comes with it)", schemas.StoreIn,
          status=201, tag="admin"),
    Route("POST", f"{V1}/admin/stores/{{store_id}}/staff", admin.add_staff, "operator",
          "Bind a WeChat openid as staff of a store", schemas.StaffIn, status=201, tag="admin",
          also=((200, "already staff of this store: nothing changed"),)),
    Route("POST", f"{V1}/admin/stores/{{store_id}}/pickup-points", admin.add_pickup_point,
          "operator", "Add a pickup point (a locker) to a store", schemas.PickupPointIn,
          status=201, tag="admin"),
    Route("GET", f"{V1}/admin/kpis", admin.area_kpis, "operator",
          "The stores' figures by district and business circle, and the city's, for a "
          "window of the mall's clock", query=schemas.KpisQuery, tag="admin"),
    Route("POST", f"{V1}/admin/coupons", coupons.issue, "operator",
          "Issue a coupon template: 满减, fixed or percent; for a store, a district, a "
          "campus or the whole city", schemas.CouponTemplateIn, status=201, tag="admin"),
    Route("GET", f"{V1}/coupons", coupons.claimable, "public",
          "Coupons to claim now (with store_id: those valid at that store)",
          query=schemas.CouponsQuery, tag="coupons"),
    Route("POST", f"{V1}/coupons/{{template_id}}/claim", coupons.claim, "user",
          "Claim a coupon: one of the template's quantity, within the per-customer limit",
          status=201, tag="coupons"),
    Route("GET", f"{V1}/me/coupons", coupons.mine, "user",
          "My coupons, available and used", tag="coupons"),
    Route("GET", f"{V1}/member-levels", membership.levels, "public",
          "Member levels (会员等级) by spending, points earned per yuan, what a point is worth",
          tag="membership"),
    Route("GET", f"{V1}/me/membership", membership.mine, "user",
          "My level, points, spending and what the next level needs", tag="membership"),
    Route("GET", f"{V1}/me/points", membership.my_points, "user",
          "My points ledger, newest first: each change with the balance after it",
          query=schemas.PageQuery, tag="membership"),
    Route("GET", f"{V1}/stores/{{store_id}}/member-prices", membership.store_prices, "public",
          "A store's member prices (会员价) and the level each needs", tag="membership"),
    Route("GET", f"{V1}/flash-sales", flash_sales.listing, "public",
          "Flash sales on now or to come (by store or district), with the units left",
          query=schemas.FlashSalesQuery, tag="flash_sales"),
    Route("GET", f"{V1}/flash-sales/{{sale_id}}", flash_sales.one, "public",
          "One flash sale, with its state and the units left", tag="flash_sales"),
    Route("POST", f"{V1}/flash-sales/{{sale_id}}/orders", flash_sales.buy, "user",
          "Buy in a flash sale: an order for its SKU at its price, to be paid within its "
          "window; 409 sold_out, flash_sale_not_started, flash_sale_ended, "
          "flash_sale_limit_reached. Honours Idempotency-Key", schemas.FlashOrderIn,
          status=201, tag="flash_sales", links=(
              ("ReadFlashOrder", "orders_get_order", NEW_ORDER),
              ("PayFlashOrder", "orders_pay_order", NEW_ORDER))),
    Route("GET", f"{V1}/group-buys", group_buys.listing, "public",
          "Group buys (拼团) on now, by store", query=schemas.GroupBuysQuery, tag="group_buys"),
    Route("POST", f"{V1}/group-buys/{{group_buy_id}}/groups", group_buys.open_group, "user",
          "Open a group: my order at the group price, and a share code for others to join. "
          "Honours Idempotency-Key", schemas.CampaignOrderIn, status=201, tag="group_buys",
          links=(("ReadGroupOrder", "orders_get_order", NEW_ORDER),
                 ("PayGroupOrder", "orders_pay_order", NEW_ORDER))),
    Route("GET", f"{V1}/groups/{{group_id}}", group_buys.group, "public",
          "A group: its members, paid members, deadline and state", tag="group_buys"),
    Route("GET", f"{V1}/groups/shared/{{share_code}}", group_buys.shared_group, "public",
          "A group from its share link", tag="group_buys"),
    Route("POST", f"{V1}/groups/{{group_id}}/orders", group_buys.join, "user",
          "Join a group: my order at the group price; 409 group_full, group_closed, "
          "already_in_group. Honours Idempotency-Key", schemas.CampaignOrderIn, status=201,
          tag="group_buys", links=(("PayJoinedOrder", "orders_pay_order", NEW_ORDER),)),
    Route("GET", f"{V1}/recommendations", discovery.recommendations, "public",
          "Home-screen scene recommendations (首页场景推荐) on the mall clock: 夜宵 late at "
          "night, after-school snacks on school days, family packs at weekends; near the "
          "point when given (lat and lng together), each with its reason",
          query=schemas.RecommendationsQuery, tag="discovery",
          response=schemas.RecommendationsOut),
    Route("GET", f"{V1}/search", discovery.search, "public",
          "Products across stores by name or tag (`q`), by tag, district, distance "
          "(radius_m needs lat and lng) and opening hours; name matches first, then tag "
          "matches, then by distance; each with why it matched",
          query=schemas.SearchQuery, tag="discovery", response=schemas.SearchOut),
    Route("GET", f"{V1}/stores", browse.list_stores, "public",
          "Stores near a point (by distance) or in a district", query=schemas.StoresQuery,
          tag="browse"),
    Route("GET", f"{V1}/stores/{{store_id}}", browse.get_store, "public",
          "A store with its pickup points", tag="browse"),
    Route("GET", f"{V1}/stores/{{store_id}}/products", browse.list_products, "public",
          "A store's catalogue", query=schemas.ProductsQuery, tag="browse"),
    Route("GET", f"{V1}/stores/{{store_id}}/products/{{product_id}}", browse.get_product,
          "public", "One product with the stock state of its SKUs", tag="browse"),
    Route("POST", f"{V1}/orders", orders.create_order, "user",
          "Place an order; stock is reserved at once. Honours Idempotency-Key",
          schemas.OrderIn, status=201, tag="orders", links=(
              ("ReadOrder", "orders_get_order", NEW_ORDER),
              ("PayOrder", "orders_pay_order", NEW_ORDER),
              ("CancelOrder", "orders_cancel_order", NEW_ORDER))),
    Route("GET", f"{V1}/orders", orders.list_orders, "user", "My orders, newest first",
          query=schemas.PageQuery, tag="orders"),
    Route("GET", f"{V1}/orders/{{order_id}}", orders.get_order, "user",
          "One of my orders (with its pickup code once paid)", tag="orders"),
    Route("POST", f"{V1}/orders/{{order_id}}/cancel", orders.cancel_order, "user",
          "Cancel an unpaid order", tag="orders"),
    Route("POST", f"{V1}/orders/{{order_id}}/pay", orders.pay_order, "user",
          "Request payment: a prepay_id from the payer (WeChat Pay's JSAPI order); 503 when "
          "the payer does not answer", status=201, also=((503, "the payer did not answer"),),
          tag="payments", links=(("ReadPaidOrder", "orders_get_order",
                                  {"order_id": "$request.path.order_id"}),)),
    Route("POST", f"{V1}/payments/notify", payments.notify, "public",
          "Payment and refund notifications from the payer (signed, WeChat Pay v3 contract)",
          status=204, tag="payments"),
    Route("POST", f"{V1}/orders/{{order_id}}/refund", after_sales.request_refund, "user",
          "Ask for a refund of a paid order, before or after pickup (after: within 7 days)",
          schemas.RefundIn, status=201, tag="after_sales"),
    Route("GET", f"{V1}/orders/{{order_id}}/refund", after_sales.my_refund, "user",
          "The refund of one of my orders", tag="after_sales"),
    Route("POST", f"{S}/products", merchant.add_product, "store", "Add a product",
          schemas.ProductIn, status=201, tag="merchant", links=(
              ("SetStock", "merchant_set_stock", NEW_SKU),
              ("ReadStock", "merchant_get_stock", NEW_SKU),
              ("ReadProduct", "browse_get_product",
               {"store_id": "$request.path.store_id",
                "product_id": "$response.body#/product_id"}))),
    Route("POST", f"{S}/coupons", coupons.issue_for_store, "store",
          "Issue a coupon template for this store", schemas.CouponTemplateIn, status=201,
          tag="merchant"),
    Route("POST", f"{S}/flash-sales", flash_sales.create, "store",
          "Set up a flash sale (秒杀) of one of this store's SKUs", schemas.FlashSaleIn,
          status=201, tag="merchant"),
    Route("POST", f"{S}/group-buys", group_buys.create, "store",
          "Set up a group buy (拼团) of one of this store's SKUs", schemas.GroupBuyIn,
          status=201, tag="merchant"),
    Route("PUT", f"{S}/member-prices/{{sku_id}}", membership.set_price, "store",
          "Set what members from a level up pay for a SKU (below its list price)",
          schemas.MemberPriceIn, tag="merchant"),
    Route("DELETE", f"{S}/member-prices/{{sku_id}}", membership.drop_price, "store",
          "Drop a SKU's member price", tag="merchant"),
    Route("GET", f"{S}/inventory/{{sku_id}}", merchant.get_stock, "store",
          "A SKU's stock: on hand, held by open orders, available", tag="merchant"),
    Route("PUT", f"{S}/inventory/{{sku_id}}", merchant.set_stock, "store",
          "Set a SKU's stock on hand (absolute sync)", schemas.StockIn, tag="merchant"),
    Route("PUT", f"{S}/inventory", merchant.bulk_set_stock, "store",
          "Set many SKUs' stock at once: all or none", schemas.BulkStockIn, tag="merchant"),
    Route("GET", f"{S}/orders", merchant.store_orders, "store",
          "The store's orders of a day (today by default)", query=schemas.StoreOrdersQuery,
          tag="merchant"),
    Route("GET", f"{S}/orders/{{order_id}}", merchant.store_order, "store",
          "One of the store's orders", tag="merchant"),
    Route("GET", f"{S}/kpis", merchant.store_kpis, "store",
          "How the store is doing (门店运营看板): GMV, orders, refunds, conversion from "
          "visits, repurchase, top products, low stock, pickup waiting time, for a window "
          "of the mall's clock", query=schemas.KpisQuery, tag="merchant"),
    Route("GET", f"{S}/pickup-queue", merchant.pickup_queue, "store",
          "Paid and ready pickup orders, oldest first", tag="merchant"),
    Route("POST", f"{S}/orders/{{order_id}}/ready", merchant.mark_ready, "store",
          "Mark a pickup order ready", tag="merchant"),
    Route("POST", f"{S}/orders/{{order_id}}/pickup", merchant.verify_pickup, "store",
          "Hand over a pickup order against its code", schemas.PickupCode, tag="merchant"),
    Route("POST", f"{S}/orders/{{order_id}}/dispatch", merchant.dispatch, "store",
          "Send a delivery order out", tag="merchant"),
    Route("POST", f"{S}/orders/{{order_id}}/delivered", merchant.delivered, "store",
          "Mark a delivery order delivered", tag="merchant"),
    Route("GET", f"{S}/refunds", after_sales.store_refunds, "store",
          "The store's refunds, newest first", query=schemas.RefundsQuery, tag="merchant"),
    Route("POST", f"{S}/orders/{{order_id}}/refund", after_sales.decide_refund, "store",
          "Approve (the payer pays it back) or reject a requested refund",
          schemas.RefundDecisionIn, tag="merchant"),
    Route("GET", f"{S}/audit-log", merchant.audit_log, "store",
          "Audit log of the store's merchant and operator actions", query=schemas.PageQuery,
          tag="merchant"),
)


def route_names() -> set[str]:
    """Every route as "METHOD /template" (what fault profiles name)."""
    return {f"{route.method} {route.path}" for route in ROUTES}


def guarded(route: Route, risk: RiskControl) -> Handler:
    """The handler behind the access check its route declares, and the risk-control rules
    that watch it (counted after authentication, so per-account rules know the account)."""
    key = f"{route.method} {route.path}"
    watched = risk.watches(key)
    if route.access == "public" and not watched:
        return route.handler

    async def handler(request: web.Request) -> web.StreamResponse:
        if route.access == "public":
            await risk.admit(key, request, None)
            return await route.handler(request)
        svc = request.app[SERVICES]
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            raise Unauthorized("login_required", "log in first (Authorization: Bearer)",
                               "Authorization")
        principal = svc.signer.verify(token, svc.clock.wall())
        if not route.after_deletion:
            svc.accounts.require_live(principal)
        if route.access == "operator" and not principal.is_operator:
            raise Forbidden("operator_only", "only operators may do this", "Authorization")
        if route.access == "store":
            await svc.accounts.require_store_access(principal,
                                                    validation.path_id(request, "store_id"))
        if watched:
            await risk.admit(key, request, principal.user_id)
        request[PRINCIPAL] = principal
        return await route.handler(request)

    return handler


def setup_routes(app: web.Application, risk: RiskControl) -> None:
    for route in ROUTES:
        app.router.add_route(route.method, route.path, guarded(route, risk))
