"""What the load saw, as `client.json` says it: written by the load process when it quits,
or by the master from its workers' shares."""

from __future__ import annotations

import heapq

from .arrivals import ArrivalLog
from .client_metrics import LoadMetrics


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
