"""What a run observed, in the terms thresholds speak: the client's side written by the
load generator when it quits (`client.json`), joined with the mall's own metrics."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from .arrivals import ArrivalLog
from .client_metrics import LoadMetrics
from .thresholds import Threshold


def side_summaries(metrics: LoadMetrics, outcomes: dict[str, dict[str, int]]) -> dict:
    """What one load process saw of each side: every response time, failures, the funnel,
    orders, GMV and how sessions ended."""
    orders: dict[str, dict[str, int]] = {side: {} for side in outcomes}
    gmv: dict[str, float] = dict.fromkeys(outcomes, 0.0)
    funnel: dict[str, dict[str, int]] = {side: {} for side in outcomes}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if not sample.name.endswith("_total") or "side" not in sample.labels:
                continue
            side = sample.labels["side"]
            if sample.name == "loadgen_orders_total":
                orders.setdefault(side, {})[sample.labels["outcome"]] = int(sample.value)
            elif sample.name == "loadgen_gmv_yuan_total":
                gmv[side] = round(sample.value, 2)
            elif sample.name == "loadgen_funnel_total":
                stages = funnel.setdefault(side, {})
                stage = sample.labels["stage"]
                stages[stage] = stages.get(stage, 0) + int(sample.value)
    return {side: {
        "latencies_ms": {name: sorted(round(v, 3) for v in values)
                         for name, values in sorted(metrics.samples[side].items())},
        "failures": dict(sorted(metrics.failures[side].items())),
        "server_errors": metrics.server_errors[side],
        "funnel": funnel.get(side, {}),
        "orders": orders.get(side, {}),
        "gmv_yuan_client": gmv.get(side, 0.0),
        "outcomes": dict(sorted(outcomes[side].items())),
    } for side in outcomes}


def merge_sides(parts: list[dict]) -> dict:
    """Several load workers' `side_summaries` as one process's: response times merged in
    order, counts added."""
    merged: dict[str, dict] = {}
    for part in parts:
        for side, seen in part.items():
            into = merged.setdefault(side, {"latencies_ms": {}, "failures": {},
                                            "server_errors": 0, "funnel": {}, "orders": {},
                                            "gmv_yuan_client": 0.0, "outcomes": {}})
            for name, values in seen["latencies_ms"].items():
                into["latencies_ms"][name] = list(heapq.merge(
                    into["latencies_ms"].get(name, []), values))
            for key in ("failures", "funnel", "orders", "outcomes"):
                for name, n in seen[key].items():
                    into[key][name] = into[key].get(name, 0) + n
            into["server_errors"] += seen["server_errors"]
            into["gmv_yuan_client"] = round(into["gmv_yuan_client"] + seen["gmv_yuan_client"],
                                            2)
    for seen in merged.values():
        for key in ("latencies_ms", "failures", "outcomes"):
            seen[key] = dict(sorted(seen[key].items()))
    return merged


def client_summary(sides: dict, arrivals: ArrivalLog, cut_off: int, scheduled: int,
                   finished: bool) -> dict:
    """What the load saw (`client.json`): arrivals for the whole run, the rest per side."""
    return {
        "finished": finished,
        "sessions": {"scheduled": scheduled, "started": sum(arrivals.started.values()),
                     "late": arrivals.late, "max_lateness_s": round(arrivals.max_lateness, 3),
                     "cut_off": cut_off},
        "arrival_windows": arrivals.windows(),
        "arrival_rate_error": arrivals.rate_error(),
        "sides": sides,
    }


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
