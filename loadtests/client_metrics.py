"""What the load generator measures, from the client's side, per side (baseline or canary).

Prometheus metrics on a port, so one Prometheus server scrapes the malls and the load alike;
docs/metrics.md lists them.  Latency buckets are fine (8 per doubling) because the gate runs
rank tests on the buckets themselves: that is what a Prometheus server would hold, so a run
judged from its recorded metrics and from Prometheus gets the same answer.  The raw response
times are kept too, for exact threshold percentiles and the report's charts."""

from __future__ import annotations

from collections import defaultdict

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

# 0.5 ms to 65.5 s, 8 buckets per doubling (each ~9% wide), as Prometheus native histograms'
# schema 3 would have them.
LATENCY_BUCKETS = tuple(float(f"{0.0005 * 2 ** (i / 8):.6g}") for i in range(8 * 17 + 1))
# Yuan paid in one session: 0 (most sessions), then 1 to 8192 yuan, 8 per doubling.
GMV_BUCKETS = (0.0, *(float(f"{2 ** (i / 8):.6g}") for i in range(8 * 13 + 1)))
BASKET_BUCKETS = (*range(1, 21), 25, 30, 40, 50)
FUNNEL = ("session", "viewed", "ordered", "paying", "paid", "completed")


class LoadMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("loadgen_requests", "Requests sent, by side, name and status",
                                ["side", "name", "status_class"], registry=r)
        self.request_failures = Counter(
            "loadgen_request_failures",
            "Requests that failed: no response, or an error status the step does not expect",
            ["side", "name"], registry=r)
        self.duration = Histogram("loadgen_request_duration_seconds",
                                  "Response time seen by the client", ["side", "name"],
                                  buckets=LATENCY_BUCKETS, registry=r)
        self.funnel = Counter("loadgen_funnel", "Sessions reaching a stage of the funnel",
                              ["side", "persona", "district", "stage"], registry=r)
        self.sessions_lost = Counter("loadgen_sessions_lost",
                                     "Sessions that left because of the build",
                                     ["side", "persona", "reason"], registry=r)
        self.orders = Counter("loadgen_orders", "Orders by outcome seen by customers and staff",
                              ["side", "outcome"], registry=r)
        self.gmv_yuan = Counter("loadgen_gmv_yuan", "Value of orders paid, yuan", ["side"],
                                registry=r)
        self.session_gmv = Histogram("loadgen_session_gmv_yuan", "Value paid per session, yuan",
                                     ["side"], buckets=GMV_BUCKETS, registry=r)
        self.basket_items = Histogram("loadgen_basket_items", "Items per order placed",
                                      ["side"], buckets=BASKET_BUCKETS, registry=r)
        self.sessions_scheduled = Counter("loadgen_sessions_scheduled",
                                          "Sessions due so far by the schedule", registry=r)
        self.sessions_late = Counter("loadgen_sessions_late",
                                     "Sessions started later than allowed", registry=r)
        self.sessions_in_flight = Gauge("loadgen_sessions_in_flight", "Sessions walking now",
                                        registry=r)
        self.target_rate = Gauge("loadgen_target_sessions_per_second",
                                 "Scheduled session starts per second (last 10 s)", registry=r)
        self.achieved_rate = Gauge("loadgen_achieved_sessions_per_second",
                                   "Actual session starts per second (last 10 s)", registry=r)
        self.simulated_time = Gauge("loadgen_simulated_time_seconds",
                                    "The scenario's simulated clock, Unix seconds", registry=r)
        self.finished = Gauge("loadgen_run_finished",
                              "1 once every session has ended and the desk is clear",
                              registry=r)
        # side -> name -> response times in ms, for exact percentiles
        self.samples: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.failures: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.server_errors: dict[str, int] = defaultdict(int)
        # Children are cached: labels() costs a lock and a lookup on every request.
        self._counters: dict[tuple[str, str, str], Counter] = {}
        self._histograms: dict[tuple[str, str], Histogram] = {}
        self.listeners: list = []   # more consumers of each request (the request log)

    def serve(self, port: int) -> None:
        start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def on_request(self, request_type, name, response_time, response_length, exception=None,
                   response=None, context=None, **_) -> None:
        """Locust's request event: every request the journeys make passes through here."""
        side = (context or {}).get("side", "baseline")
        status = getattr(response, "status_code", 0) or 0
        shed = status == 503 and "Retry-After" in getattr(response, "headers", {})
        status_class = "shed" if shed else f"{status // 100}xx" if status else "error"
        counter = self._counters.get((side, name, status_class))
        if counter is None:
            counter = self._counters[side, name, status_class] = self.requests.labels(
                side, name, status_class)
        counter.inc()
        histogram = self._histograms.get((side, name))
        if histogram is None:
            histogram = self._histograms[side, name] = self.duration.labels(side, name)
        histogram.observe(response_time / 1000)
        self.samples[side][name].append(response_time)
        failed = exception is not None
        if failed:
            self.failures[side][name] += 1
            self.request_failures.labels(side, name).inc()
        if status >= 500 and not shed:
            self.server_errors[side] += 1
        for listener in self.listeners:
            listener(side, name, status, response_time, failed)
