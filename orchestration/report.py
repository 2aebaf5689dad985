"""The run's verdict (`verdict.json`) and a readable summary (`summary.md`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from monitoring.gate import judge, markdown
from monitoring.gate_inputs import recorded
from monitoring.report_html import write_report

from .judged_scenario import JudgedScenario
from .observed import Observed, percentile

STEP_PERCENTILES = (50, 95, 99)


def evaluate(scenario: JudgedScenario, observed: Observed) -> list[dict]:
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
    for name, values in observed.seen["latencies_ms"].items():
        failures = observed.seen["failures"].get(name, 0)
        rows.append({"name": name, "count": len(values), "failures": failures,
                     **{f"p{p}_ms": round(percentile(values, p), 1) for p in STEP_PERCENTILES}})
    return rows


def side_summary(observed: Observed, results: list[dict], build: dict) -> dict:
    seen = observed.seen
    return {
        "build": build,
        "passed": all(r["passed"] for r in results),
        "thresholds": results,
        "funnel": seen["funnel"],
        "orders_client": seen["orders"],
        "outcomes": seen["outcomes"],
        "mall": {k: v for k, v in observed.mall.items() if k.startswith(
            ("mall_orders_total", "mall_gmv", "mall_stock_oversold", "mall_payment_notif",
             "mall_pickup_code", "mall_build_info"))},
        "steps": steps(observed),
    }


def write(report_dir: Path, scenario: JudgedScenario, observed: dict[str, Observed],
          results: dict[str, list[dict]], facts: dict, builds: dict[str, dict],
          from_prometheus: list | None = None) -> dict:
    """verdict.json and summary.md for a single or a paired run (the gate adds its part)."""
    client = next(iter(observed.values())).client
    verdict = {
        "scenario": scenario.name,
        "scenario_path": str(scenario.path.resolve()),
        "run": report_dir.name,
        "mode": "paired" if len(observed) > 1 else "single",
        "facts": facts,
        "sessions": client["sessions"],
        "arrival_rate_error": client["arrival_rate_error"],
        "sides": {side: side_summary(seen, results[side], builds[side])
                  for side, seen in observed.items()},
    }
    if verdict["mode"] == "single":
        verdict["passed"] = verdict["sides"]["baseline"]["passed"]
    else:
        verdict["gate"] = judge(scenario.gate, recorded(report_dir), results)
        if from_prometheus is not None:  # the same judgement from what Prometheus holds
            again = judge(scenario.gate, from_prometheus, results)
            verdict["gate_prometheus"] = {
                "verdict": again["verdict"],
                "same_classification": _classes(again) == _classes(verdict["gate"]),
                "metrics": [[m["key"], m["classification"]] for m in again["metrics"]]}
    (report_dir / "verdict.json").write_text(json.dumps(verdict, indent=2, ensure_ascii=False)
                                             + "\n", encoding="utf-8")
    (report_dir / "summary.md").write_text(_markdown(verdict), encoding="utf-8")
    write_report(report_dir)   # after the verdict is safe on disk
    return verdict


def _classes(gate: dict) -> list[tuple[str, str]]:
    return [(m["key"], m["classification"]) for m in gate["metrics"]]


def _markdown(v: dict) -> str:
    s, facts = v["sessions"], v["facts"]
    title = ("PASS" if v["passed"] else "FAIL") if v["mode"] == "single" else \
        v.get("gate", {}).get("verdict", "not judged").upper()
    lines = [f"# {v['scenario']}: {title}", "",
             f"- simulated window: {facts['window']} at {facts['speed']}x "
             f"({facts['real_seconds']:.0f} s real), city {facts['city']}",
             f"- sessions: {s['started']} started of {s['scheduled']} scheduled, "
             f"{s['late']} late (max {s['max_lateness_s']} s), {s['cut_off']} cut off at the end",
             f"- arrival rate error (worst 10 s window above 5/s): "
             f"{_pct(v['arrival_rate_error'])}", ""]
    if "gate" in v:
        lines += markdown(v["gate"])
    for side, data in v["sides"].items():
        build = data["build"]
        faults = f", faults {build['faults']}" if build["faults"] else ""
        lines += [f"## {side}: {build['build']} ({build['kind']}, commit "
                  f"{build['commit'][:12]}){faults}", "",
                  f"- funnel: {json.dumps(data['funnel'], ensure_ascii=False)}",
                  f"- orders (client): {json.dumps(data['orders_client'], ensure_ascii=False)}",
                  f"- GMV (mall): {data['mall'].get('mall_gmv_yuan_total', 0):,.2f} yuan", "",
                  "| threshold | observed | result |", "|---|---|---|"]
        for r in data["thresholds"]:
            lines.append(f"| `{r['threshold']}` | {r['observed']} | "
                         f"{'pass' if r['passed'] else '**FAIL**'} |")
        lines += ["", "| step | requests | failures | p50 ms | p95 ms | p99 ms |",
                  "|---|---|---|---|---|---|"]
        for row in data["steps"]:
            lines.append(f"| {row['name']} | {row['count']} | {row['failures']} | "
                         f"{row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} |")
        lines += ["", "Session outcomes:", ""]
        lines += [f"- {k}: {n}" for k, n in data["outcomes"].items()]
        lines.append("")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a (no window above 5 sessions/s)" if value is None else f"{value:.1%}"
