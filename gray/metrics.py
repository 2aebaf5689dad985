"""The router's own Prometheus metrics, every one carrying the side it sent a request to,
on a registry of its own (a router and malls can share a process in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mall.metrics import LATENCY_BUCKETS


class RouterMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("gray_router_requests", "Requests passed on, by side and by "
                                "what came back (2xx..5xx of the mall, or the router's own "
                                "unreachable/timeout)", ["side", "outcome"], registry=r)
        self.duration = Histogram("gray_router_request_duration_seconds",
                                  "From receiving a request to having the mall's answer",
                                  ["side"], buckets=LATENCY_BUCKETS, registry=r)
        self.rules_changes = Counter("gray_router_rules_changes", "Rule changes put in force",
                                     registry=r)
        self.canary_share = Gauge("gray_router_canary_share",
                                  "The share of customers the rules send to the canary",
                                  registry=r)

    def observe(self, side: str, outcome: str, seconds: float) -> None:
        self.requests.labels(side, outcome).inc()
        self.duration.labels(side).observe(seconds)
