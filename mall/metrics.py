"""The mall's Prometheus metrics, on a registry of its own per app instance, so several
malls (a baseline and a canary, or tests) can live in one process without clashing."""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# Fine below 50 ms, where the mall's routes live when it is healthy (a p95 of 4 ms and one of
# 9 ms must not read alike), coarse above, up to the 10 s a mini-program gives up at.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015,
                   0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.25, 0.4, 0.6, 0.8, 1.0,
                   1.5, 2.5, 5.0, 10.0)


class MallMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._request_children: dict[tuple[str, str, int], tuple] = {}
        r = self.registry
        self.http_requests = Counter(
            "mall_http_requests", "HTTP requests served",
            ["method", "route", "status_class"], registry=r)
        self.http_duration = Histogram(
            "mall_http_request_duration_seconds", "Time to serve an HTTP request",
            ["method", "route", "status_class"], buckets=LATENCY_BUCKETS, registry=r)
        self.orders = Counter("mall_orders", "Order state changes", ["change"], registry=r)
        self.gmv_yuan = Counter("mall_gmv_yuan", "Paid order value, yuan", registry=r)
        self.payment_notifications = Counter(
            "mall_payment_notifications", "Payment notifications received", ["result"],
            registry=r)
        self.payment_queries = Counter(
            "mall_payment_queries", "Payments settled or closed by asking the payer (order "
            "query, close)", ["result"], registry=r)
        self.stock_oversold = Counter(
            "mall_stock_oversold", "Units promised beyond stock (must stay 0)", registry=r)
        self.pickup_code_failures = Counter(
            "mall_pickup_code_failures", "Wrong pickup codes presented", registry=r)
        self.out_of_stock = Counter(
            "mall_out_of_stock", "Order attempts refused for lack of stock", registry=r)
        self.coupon_claims = Counter("mall_coupon_claims", "Coupons claimed by customers",
                                     registry=r)
        self.coupon_redemptions = Counter(
            "mall_coupon_redemptions", "Coupons taken off orders (`used`) and given back by "
            "a cancelled or expired order (`returned`)", ["change"], registry=r)
        self.coupon_refusals = Counter(
            "mall_coupon_refusals", "Coupon claims and uses refused, by reason", ["reason"],
            registry=r)
        self.flash_sale_units = Counter(
            "mall_flash_sale_units", "Flash-sale units taken by new orders (`taken`) and back "
            "on sale from orders closed unpaid (`returned`)", ["change"], registry=r)
        self.flash_sale_refusals = Counter(
            "mall_flash_sale_refusals", "Flash-sale orders refused, by reason, and whether this "
            "process answered from memory or asked the database", ["reason", "answered_from"],
            registry=r)
        self.groups = Counter(
            "mall_groups", "Group buys: groups opened, members joined, groups succeeded and "
            "failed", ["change"], registry=r)
        self.refunds = Counter(
            "mall_refunds", "Refunds by what happened (requested, approved, rejected, "
            "refunded, refused_by_payer) and the customer's reason", ["change", "reason"],
            registry=r)
        self.points = Counter(
            "mall_points", "Member points by movement: earned by paid orders, redeemed on new "
            "orders, returned by orders closed or refunded, reversed by refunds", ["change"],
            registry=r)
        self.refund_settlements = Counter(
            "mall_refund_settlements", "The payer's word on refunds, by how it came "
            "(notification, query) and what applying it did", ["how", "outcome"], registry=r)
        self.recommendations = Counter(
            "mall_recommendations", "Home-screen recommendations served, by scene",
            ["scene"], registry=r)
        self.catalogue_pages = Counter(
            "mall_catalogue_pages", "Catalogue and product pages served, by whether what "
            "they show apart from stock was kept by this process or read from the database",
            ["source"], registry=r)
        self.searches = Counter("mall_searches", "Searches across stores, by whether they "
                                "found anything (`hits`, `none`) and how: through the search "
                                "index or by a scan (`via`)", ["result", "via"], registry=r)
        self.shed_requests = Counter("mall_shed_requests",
                                     "Requests refused with 503 by load shedding", ["reason"],
                                     registry=r)
        self.queue_delay = Gauge(
            "mall_queue_delay_seconds", "How late the event loop last ran a timer: what a "
            "request arriving now waits before its handler starts (load shedding's signal)",
            registry=r, multiprocess_mode="livemax")
        self.requests_in_flight = Gauge("mall_requests_in_flight",
                                        "Requests being handled (admitted, not yet answered)",
                                        registry=r, multiprocess_mode="livesum")
        self.risk_rejections = Counter("mall_risk_rejections",
                                       "Requests refused with 429 by a risk-control rule",
                                       ["rule"], registry=r)
        self.risk_store_errors = Counter(
            "mall_risk_store_errors", "Requests admitted unjudged because the shared "
            "risk-control store (Redis) did not answer", registry=r)
        self.experiment_exposures = Counter(
            "mall_experiment_exposures", "Arms of A/B experiments told to customers "
            "(GET /api/v1/me/experiments)", ["experiment", "arm"], registry=r)
        self.build_info = Gauge("mall_build_info", "This build, and the fault profile it runs",
                                ["version", "commit", "faults"], registry=r,
                                multiprocess_mode="livemax")

    def exposition(self) -> bytes:
        """The text /metrics answers: this registry's, or, when worker processes share the
        port (mall/workers.py), every live and past worker's, summed."""
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)
        return generate_latest(combined)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # The labelled children once per (method, route, status): `labels()` checks and
        # locks each time, a third of this call on every request.
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            status_class = f"{status // 100}xx"
            children = self._request_children[key] = (
                self.http_requests.labels(method, route, status_class),
                self.http_duration.labels(method, route, status_class))
        children[0].inc()
        children[1].observe(seconds)
