"""What the load generator measures, from the client's side, per side (baseline or canary).

Prometheus metrics on a port, so one Prometheus server scrapes the malls and the load alike;
docs/metrics.md lists them.  Latency buckets are fine (8 per doubling) because the gate runs
rank tests on the buckets themselves: that is what a Prometheus server would hold, so a run
judged from its recorded metrics and from Prometheus gets the same answer.  The raw response
times are kept too, for exact threshold percentiles and the report's charts."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

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
        self.requests = RequestCounts()
        r.register(self.requests)
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
        self.requests.count(side, name, status_class, response_time / 1000, exception)
        self.samples[side][name].append(response_time)
        failed = exception is not None
        if failed:
            self.failures[side][name] += 1
        if status >= 500 and not shed:
            self.server_errors[side] += 1
        for listener in self.listeners:
            listener(side, name, status, response_time, failed)


class RequestCounts:
    """Requests, their failures and their response times, as the three metrics
    `loadgen_requests`, `loadgen_request_failures` and `loadgen_request_duration_seconds`
    (the names, labels and buckets a Counter and a Histogram would give them), counted in
    plain dictionaries and turned into metrics only when scraped.  Every request of the
    load passes here; a Counter and a Histogram took a lock and several calls each per
    request, 8% of the load generator's CPU."""

    def __init__(self) -> None:
        self.by_status: dict[tuple[str, str, str], int] = {}   # (side, name, class) -> n
        self.failed: dict[tuple[str, str], int] = {}
        # (side, name) -> [count per bucket (the last is +Inf), sum of seconds]
        self.times: dict[tuple[str, str], list] = {}

    def count(self, side: str, name: str, status_class: str, seconds: float,
              failure: BaseException | None) -> None:
        key = (side, name, status_class)
        self.by_status[key] = self.by_status.get(key, 0) + 1
        times = self.times.get((side, name))
        if times is None:
            times = self.times[side, name] = [[0] * (len(LATENCY_BUCKETS) + 1), 0.0]
        times[0][bisect_left(LATENCY_BUCKETS, seconds)] += 1   # le: upper bounds included
        times[1] += seconds
        if failure is not None:
            self.failed[side, name] = self.failed.get((side, name), 0) + 1

    def describe(self) -> list[Metric]:
        """The three metrics with no samples: what the registry learns their names from."""
        return [
            CounterMetricFamily("loadgen_requests", "Requests sent, by side, name and status",
                                labels=["side", "name", "status_class"]),
            CounterMetricFamily("loadgen_request_failures", "Requests that failed: no "
                                "response, or an error status the step does not expect",
                                labels=["side", "name"]),
            HistogramMetricFamily("loadgen_request_duration_seconds",
                                  "Response time seen by the client", labels=["side", "name"]),
        ]

    def collect(self) -> Iterator[Metric]:
        requests, failures, duration = self.describe()
        for labels, n in list(self.by_status.items()):
            requests.add_metric(labels, n)
        for labels, n in list(self.failed.items()):
            failures.add_metric(labels, n)
        for labels, (counts, total) in list(self.times.items()):
            running, buckets = 0, []
            for bound, n in zip((*LATENCY_BUCKETS, float("inf")), list(counts), strict=True):
                running += n
                buckets.append((floatToGoString(bound), running))
            duration.add_metric(labels, buckets, total)
        yield from (requests, failures, duration)
