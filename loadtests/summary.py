"""What a run observed, in the terms thresholds speak: the client's side written by the
load generator when it quits (`client.json`), joined with the mall's own metrics."""

from __future__ import annotations

from dataclasses import dataclass

from .arrivals import ArrivalLog
from .client_metrics import LoadMetrics
from .thresholds import Threshold


def client_summary(metrics: LoadMetrics, arrivals: ArrivalLog, outcomes: dict[str, int],
                   cut_off: int, scheduled: int, finished: bool) -> dict:
    orders = {sample.labels["outcome"]: int(sample.value)
              for family in metrics.orders.collect() for sample in family.samples
              if sample.name.endswith("_total")}
    return {
        "finished": finished,
        "latencies_ms": {name: sorted(round(v, 3) for v in values)
                         for name, values in sorted(metrics.samples.items())},
        "failures": dict(sorted(metrics.failures.items())),
        "server_errors": metrics.server_errors,
        "sessions": {"scheduled": scheduled, "started": sum(arrivals.started.values()),
                     "late": arrivals.late, "max_lateness_s": round(arrivals.max_lateness, 3),
                     "cut_off": cut_off, "outcomes": dict(sorted(outcomes.items()))},
        "arrival_windows": arrivals.windows(),
        "arrival_rate_error": arrivals.rate_error(),
        "orders": orders,
        "gmv_yuan_client": round(metrics.gmv_yuan._value.get(), 2),
    }


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile, as k6 and HdrHistogram report it."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(min(rank, len(sorted_values))) - 1]


@dataclass
class Observed:
    client: dict
    mall: dict[str, float]   # sample name -> value, from the mall's /metrics

    def _latencies(self, name: str | None) -> list[float]:
        by_name = self.client["latencies_ms"]
        if name is not None:
            return by_name.get(name, [])
        return sorted(v for values in by_name.values() for v in values)

    def value(self, threshold: Threshold) -> float:
        name = threshold.tag[1] if threshold.tag and threshold.tag[0] == "name" else None
        agg = threshold.aggregation
        if threshold.metric == "http_req_duration":
            values = self._latencies(name)
            if not values:
                return float("nan")
            if agg.startswith("p"):
                return percentile(values, float(agg[1:]))
            return {"avg": sum(values) / len(values), "med": percentile(values, 50),
                    "min": values[0], "max": values[-1]}[agg]
        if threshold.metric == "http_req_failed":
            total = len(self._latencies(name))
            failed = (self.client["failures"].get(name, 0) if name
                      else sum(self.client["failures"].values()))
            return failed / total if total else 0.0
        if threshold.metric == "http_reqs":
            return float(len(self._latencies(name)))
        sessions, orders = self.client["sessions"], self.client["orders"]
        simple = {
            "http_5xx": self.client["server_errors"],
            "sessions_started": sessions["started"],
            "orders": orders.get("created", 0),
            "gmv_yuan": self.mall.get("mall_gmv_yuan_total", 0.0),
            "oversold": self.mall.get("mall_stock_oversold_total", 0.0),
            "arrival_rate_error": self.client["arrival_rate_error"] or 0.0,
        }
        if threshold.metric in simple:
            return float(simple[threshold.metric])
        if threshold.metric == "sessions_late":
            late = sessions["late"]
            return late if agg == "count" else late / max(sessions["started"], 1)
        if threshold.metric == "order_completion":
            return orders.get("completed", 0) / max(orders.get("to_complete", 0), 1)
        if threshold.metric == "conversion":
            return orders.get("paid", 0) / max(sessions["started"], 1)
        raise KeyError(threshold.metric)
