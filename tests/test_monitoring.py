"""Monitoring as shipped: Prometheus's own tool accepts the configuration and the rules and
passes their unit tests, and every PromQL expression in rules and dashboards names only
metrics and labels that the mall and the load generator really export (and docs/metrics.md
lists exactly those)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import promql_parser
import pytest
import yaml

from loadtests.client_metrics import LoadMetrics
from mall.metrics import MallMetrics

ROOT = Path(__file__).resolve().parent.parent
PROM = ROOT / "monitoring" / "prometheus"
GRAFANA = ROOT / "monitoring" / "grafana"
ADDED_BY_PROMETHEUS = {"side", "run", "job", "instance"}
promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                              reason="promtool missing (.ci/run installs Debian's prometheus)")


def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=PROM, capture_output=True, text=True,
                          timeout=60)


@promtool
def test_promtool_accepts_config_and_rules_and_their_unit_tests_pass():
    config = _promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    rules = _promtool("check", "rules", *sorted(str(p) for p in (PROM / "rules").glob("*.yml")))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    tests = _promtool("test", "rules", *sorted(str(p) for p in (PROM / "tests").glob("*.yml")))
    assert tests.returncode == 0 and "SUCCESS" in tests.stdout, tests.stdout + tests.stderr


def test_every_alert_has_a_unit_test():
    alerts = {r["alert"] for g in yaml.safe_load((PROM / "rules" / "alerts.yml").read_text())
              ["groups"] for r in g["rules"]}
    tested = {t["alertname"] for f in (PROM / "tests").glob("*.yml")
              for case in yaml.safe_load(f.read_text())["tests"]
              for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    assert alerts == tested, alerts ^ tested


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


def families(registry) -> Iterator[tuple[str, str, set[str]]]:
    """(name, type, label names) of every metric family a registry exposes: a Counter,
    Gauge or Histogram says them itself, a collector of its own through describe()."""
    for collector in registry._collector_to_names:
        if hasattr(collector, "_labelnames"):
            yield collector._name, collector._type, set(collector._labelnames)
        else:
            for family in collector.describe():
                yield family.name, family.type, set(family._labelnames)


def exported() -> dict[str, set[str]]:
    """Series names the real registries expose, with their label names."""
    series: dict[str, set[str]] = {}
    for registry in (MallMetrics().registry, LoadMetrics().registry):
        for name, kind, labels in families(registry):
            for suffix in SUFFIXES.get(kind, ("",)):
                series[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return series


def recorded_series() -> dict[str, set[str]]:
    series = {}
    for group in yaml.safe_load((PROM / "rules" / "recording.yml").read_text())["groups"]:
        for rule in group["rules"]:
            by = re.findall(r"by \(([^)]*)\)", rule["expr"])
            series[rule["record"]] = {label.strip() for b in by for label in b.split(",")}
    return series


def expressions() -> list[tuple[str, str]]:
    found = []
    for path in (PROM / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            found += [(f"{path.name}:{r.get('record') or r.get('alert')}", r["expr"])
                      for r in group["rules"]]
    for path in (GRAFANA / "dashboards").glob("*.json"):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            found += [(f"{path.name}:{panel['title']}", t["expr"]) for t in panel["targets"]]
        for variable in board["templating"]["list"]:
            query = variable["query"]["query"]
            metric = re.match(r"label_values\((\w+), (\w+)\)", query)
            found.append((f"{path.name}:${variable['name']}",
                          f"count by ({metric[2]}) ({metric[1]})"))
    return found


def _grafana_free(expr: str) -> str:
    """Grafana's variables stand for values; PromQL needs something in their place."""
    return (expr.replace("$__rate_interval", "1m").replace("$run", "r").replace("$side", "s")
            .replace("$step", "s"))


def _walk(node, selectors: list, grouping: set) -> None:
    if isinstance(node, promql_parser.VectorSelector):
        selectors.append((node.name, {m.name for m in node.matchers.matchers}))
        return
    modifier = getattr(node, "modifier", None)
    if modifier is not None:
        if isinstance(getattr(modifier, "labels", None), list):    # by (...) / without (...)
            grouping.update(modifier.labels)
        matching = getattr(modifier, "matching", None)             # on (...) / ignoring (...)
        grouping.update(getattr(matching, "labels", None) or ())
        grouping.update(getattr(modifier, "group_labels", None) or ())  # group_left (...)
    for attribute in ("args", "expr", "lhs", "rhs", "vector_selector", "param"):
        child = getattr(node, attribute, None)
        if child is None:
            continue
        for item in (child if isinstance(child, list) else [child]):
            _walk(item, selectors, grouping)


def problems_in(where: str, expr: str, known: dict[str, set[str]]) -> list[str]:
    """What in one expression names a metric or a label that nothing exports."""
    selectors: list = []
    grouping: set = set()
    _walk(promql_parser.parse(_grafana_free(expr)), selectors, grouping)
    if not selectors:
        return [f"{where}: no metric found in {expr!r}"]
    allowed_everywhere = ADDED_BY_PROMETHEUS | {"__name__"}
    found = []
    for name, labels in selectors:
        if name not in known:
            found.append(f"{where}: unknown metric {name}")
        elif unknown := labels - known[name] - allowed_everywhere:
            found.append(f"{where}: {name} has no label {unknown}")
    every_label = set().union(*known.values()) | allowed_everywhere
    if grouping - every_label:
        found.append(f"{where}: groups by unknown labels {grouping - every_label}")
    return found


def known_series() -> dict[str, set[str]]:
    return {**exported(), **recorded_series(), "up": set()}


def test_promql_names_only_exported_metrics_and_labels():
    known = known_series()
    problems = [p for where, expr in expressions() for p in problems_in(where, expr, known)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("expr, complaint", [
    ("sum(rate(mall_http_requests_total_typo[1m]))", "unknown metric"),
    ('mall_orders_total{side="canary", status="paid"}', "has no label {'status'}"),
    ("sum by (run, store) (mall_gmv_yuan_total)", "groups by unknown labels {'store'}"),
    ("mall_gmv_yuan_total > on (run, shop) loadgen_gmv_yuan_total", "unknown labels {'shop'}"),
    ("mall_gmv_yuan_total * on (run) group_left (tenant) mall_build_info",
     "unknown labels {'tenant'}"),
    ('histogram_quantile(0.95, sum by (le) (rate(loadgen_request_duration_seconds_bucket'
     '{name="pay", route="/x"}[1m])))', "has no label {'route'}"),
])
def test_the_cross_check_catches_a_wrong_metric_or_label(expr, complaint):
    found = problems_in("probe", expr, known_series())
    assert len(found) == 1 and complaint in found[0], found


def test_the_metrics_document_lists_exactly_what_is_exported():
    """docs/metrics.md is what dashboards and rules are written against: every family the
    real registries expose is in its tables with exactly its label names, and nothing else."""
    text = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `((?:mall|loadgen)_\w+)` \| [^|]+ \|([^|]*)\|", text, re.MULTILINE)
    documented = {name: {label.strip() for label in labels.split(",") if label.strip()}
                  for name, labels in rows}
    exposed = {}
    for registry in (MallMetrics().registry, LoadMetrics().registry):
        for name, kind, labels in families(registry):
            exposed[f"{name}_total" if kind == "counter" else name] = labels
    assert documented.keys() == exposed.keys(), documented.keys() ^ exposed.keys()
    differ = {name: (documented[name], exposed[name]) for name in exposed
              if documented[name] != exposed[name]}
    assert not differ, f"labels (documented, exported): {differ}"


def test_dashboards_are_importable_grafana_json_on_the_provisioned_datasource():
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
                                .read_text())["datasources"][0]
    uids = set()
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        uids.add(board["uid"])
        assert board["title"] and board["schemaVersion"] >= 36 and board["panels"]
        assert {v["name"] for v in board["templating"]["list"]} >= {"run", "side"}
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == datasource["uid"], (path.name, panel["title"])
            assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
            assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"])
    assert len(uids) == len(list((GRAFANA / "dashboards").glob("*.json"))) == 4   # uids unique
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "xingcheng.yml")
                              .read_text())
    assert provider["providers"][0]["type"] == "file"
