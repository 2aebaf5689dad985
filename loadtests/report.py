"""The run's verdict (`verdict.json`) and a readable summary (`summary.md`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .scenario import Scenario
from .summary import Observed, percentile

STEP_PERCENTILES = (50, 95, 99)


def evaluate(scenario: Scenario, observed: Observed) -> list[dict]:
    results = []
    for threshold in scenario.thresholds:
        value = observed.value(threshold)
        ok = not math.isnan(value) and threshold.holds(value)
        results.append({"threshold": f"{threshold.key}: {threshold.expression}",
                        "metric": threshold.key, "expression": threshold.expression,
                        "observed": None if math.isnan(value) else round(value, 4),
                        "passed": ok})
    return results


def steps(observed: Observed) -> list[dict]:
    rows = []
    for name, values in observed.client["latencies_ms"].items():
        failures = observed.client["failures"].get(name, 0)
        rows.append({"name": name, "count": len(values), "failures": failures,
                     **{f"p{p}_ms": round(percentile(values, p), 1) for p in STEP_PERCENTILES}})
    return rows


def write(report_dir: Path, scenario: Scenario, observed: Observed, results: list[dict],
          facts: dict) -> dict:
    verdict = {
        "scenario": scenario.name,
        "passed": all(r["passed"] for r in results),
        "thresholds": results,
        "facts": facts,
        "sessions": observed.client["sessions"],
        "orders_client": observed.client["orders"],
        "mall": {k: v for k, v in observed.mall.items() if k.startswith(
            ("mall_orders_total", "mall_gmv", "mall_stock_oversold", "mall_payment_notif",
             "mall_pickup_code"))},
        "steps": steps(observed),
        "arrival_rate_error": observed.client["arrival_rate_error"],
    }
    (report_dir / "verdict.json").write_text(json.dumps(verdict, indent=2, ensure_ascii=False)
                                             + "\n", encoding="utf-8")
    (report_dir / "summary.md").write_text(_markdown(verdict), encoding="utf-8")
    return verdict


def _markdown(v: dict) -> str:
    s, facts = v["sessions"], v["facts"]
    lines = [f"# {v['scenario']}: {'PASS' if v['passed'] else 'FAIL'}", "",
             f"- simulated window: {facts['window']} at {facts['speed']}x "
             f"({facts['real_seconds']:.0f} s real), city {facts['city']}",
             f"- sessions: {s['started']} started of {s['scheduled']} scheduled, "
             f"{s['late']} late (max {s['max_lateness_s']} s), {s['cut_off']} cut off at the end",
             f"- arrival rate error (worst 10 s window above 5/s): "
             f"{_pct(v['arrival_rate_error'])}",
             f"- orders (client): {json.dumps(v['orders_client'], ensure_ascii=False)}",
             f"- GMV (mall): {v['mall'].get('mall_gmv_yuan_total', 0):,.2f} yuan", "",
             "## Thresholds", "", "| threshold | observed | result |", "|---|---|---|"]
    for r in v["thresholds"]:
        lines.append(f"| `{r['threshold']}` | {r['observed']} | "
                     f"{'pass' if r['passed'] else '**FAIL**'} |")
    lines += ["", "## Steps (client-side latency, ms)", "",
              "| step | requests | failures | p50 | p95 | p99 |", "|---|---|---|---|---|---|"]
    for row in v["steps"]:
        lines.append(f"| {row['name']} | {row['count']} | {row['failures']} | {row['p50_ms']} |"
                     f" {row['p95_ms']} | {row['p99_ms']} |")
    lines += ["", "## Session outcomes", ""]
    lines += [f"- {k}: {n}" for k, n in s["outcomes"].items()]
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "n/a (no window above 5 sessions/s)" if value is None else f"{value:.1%}"
