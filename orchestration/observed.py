"""What a run observed, in the terms thresholds speak: the client's side (`client.json`),
joined with the mall's own metrics."""

from __future__ import annotations

from dataclasses import dataclass

from .thresholds import Threshold


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile, as k6 and HdrHistogram report it."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(min(rank, len(sorted_values))) - 1]


@dataclass
class Observed:
    """One side of a run as thresholds see it: the client's view of that side, the run's
    arrivals, and that side's mall metrics."""

    client: dict             # client.json
    mall: dict[str, float]   # sample name -> value, from this side's mall /metrics
    side: str = "baseline"

    @property
    def seen(self) -> dict:
        return self.client["sides"][self.side]

    def _latencies(self, name: str | None) -> list[float]:
        by_name = self.seen["latencies_ms"]
        if name is not None:
            return by_name.get(name, [])
        return sorted(v for values in by_name.values() for v in values)

    def value(self, threshold: Threshold) -> float:
        name = threshold.tag[1] if threshold.tag and threshold.tag[0] == "name" else None
        agg = threshold.aggregation
        seen = self.seen
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
            failed = (seen["failures"].get(name, 0) if name
                      else sum(seen["failures"].values()))
            return failed / total if total else 0.0
        if threshold.metric == "http_reqs":
            return float(len(self._latencies(name)))
        sessions, funnel = self.client["sessions"], seen["funnel"]
        simple = {
            "http_5xx": seen["server_errors"],
            "sessions_started": funnel.get("session", 0),
            "orders": seen["orders"].get("created", 0),
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
            return funnel.get("completed", 0) / max(funnel.get("paying", 0), 1)
        if threshold.metric == "conversion":
            return funnel.get("paid", 0) / max(funnel.get("session", 0), 1)
        raise KeyError(threshold.metric)
