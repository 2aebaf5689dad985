"""What the load generator measures about itself and the mall, from the client's side.

Prometheus metrics on a port (so one Prometheus server can scrape both sides), and the raw
response times per request name: Locust's own stats round to about two significant digits,
and the verdict wants exact percentiles."""

from __future__ import annotations

from collections import defaultdict

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.4, 0.6, 0.8,
           1.0, 1.5, 2.5, 5.0, 10.0)


class LoadMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("loadgen_requests", "Requests sent, by name and status class",
                                ["name", "status_class"], registry=r)
        self.duration = Histogram("loadgen_request_duration_seconds",
                                  "Response time seen by the client", ["name"],
                                  buckets=BUCKETS, registry=r)
        self.sessions_scheduled = Counter("loadgen_sessions_scheduled",
                                          "Sessions due so far by the schedule", registry=r)
        self.sessions_started = Counter("loadgen_sessions_started", "Sessions started",
                                        ["persona"], registry=r)
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
        self.orders = Counter("loadgen_orders", "Orders by outcome seen by customers and staff",
                              ["outcome"], registry=r)
        self.gmv_yuan = Counter("loadgen_gmv_yuan", "Value of orders paid, yuan", registry=r)
        self.samples: dict[str, list[float]] = defaultdict(list)  # name -> response times, ms
        self.failures: dict[str, int] = defaultdict(int)
        self.server_errors = 0
        self._counters: dict[tuple[str, str], Counter] = {}
        self._histograms: dict[str, Histogram] = {}

    def serve(self, port: int) -> None:
        start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def on_request(self, request_type, name, response_time, response_length, exception=None,
                   response=None, **_) -> None:
        """Locust's request event: every request the journeys make passes through here."""
        status = getattr(response, "status_code", 0) or 0
        status_class = f"{status // 100}xx" if status else "error"
        counter = self._counters.get((name, status_class))
        if counter is None:  # labels() costs a lock and a lookup; children are kept here
            counter = self._counters[name, status_class] = self.requests.labels(name,
                                                                                status_class)
        counter.inc()
        histogram = self._histograms.get(name)
        if histogram is None:
            histogram = self._histograms[name] = self.duration.labels(name)
        histogram.observe(response_time / 1000)
        self.samples[name].append(response_time)
        if exception is not None:
            self.failures[name] += 1
        if status >= 500:
            self.server_errors += 1
