"""Scenario files and thresholds: every shipped scenario loads, and bad input is a clear
error naming where it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.scenario import SHIPPED, ScenarioError
from orchestration.judged_scenario import load_scenario
from orchestration.observed import Observed, percentile
from orchestration.thresholds import ThresholdError, parse_thresholds

GOOD = """name = "tiny"
[window]
day = "weekday"
start = "2026-11-27T22:00:00+08:00"
end = "2026-11-27T22:05:00+08:00"
speed = 30
[thresholds]
"http_req_duration{name:create_order}" = ["p(95)<300", "p(99)<800"]
"http_req_failed" = ["rate<0.01"]
"oversold" = ["count==0"]
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("name", sorted(p.stem for p in SHIPPED.glob("*.toml")))
def test_shipped_scenarios_load(name):
    scenario = load_scenario(name)
    assert scenario.name == name and scenario.thresholds
    assert scenario.spec.window.real_seconds > 0


def test_a_good_file_loads_with_its_thresholds(tmp_path):
    scenario = load_scenario(write(tmp_path, GOOD))
    assert scenario.spec.window.real_seconds == 10
    assert [(t.metric, t.tag, t.aggregation, t.op, t.limit) for t in scenario.thresholds] == [
        ("http_req_duration", ("name", "create_order"), "p95", "<", 300.0),
        ("http_req_duration", ("name", "create_order"), "p99", "<", 800.0),
        ("http_req_failed", None, "rate", "<", 0.01),
        ("oversold", None, "count", "==", 0.0)]


@pytest.mark.parametrize(("change", "message"), [
    (("speed = 30", "speed = -1"), "window.speed"),
    (("day = \"weekday\"", "day = \"holiday\""), "window.day"),
    (("end = \"2026-11-27T22:05:00+08:00\"", "end = \"2026-11-27T21:00:00+08:00\""),
     "end must come after start"),
    (("start = \"2026-11-27T22:00:00+08:00\"", "start = \"2026-11-27T22:00:00\""),
     "UTC offset"),
    (("name = \"tiny\"", "name = \"tiny\"\nflavour = 1"), "flavour"),
    (("name = \"tiny\"", "name = \"tiny\"\n[mix]\nwizard = 2"), "unknown personas"),
    (("name = \"tiny\"", "name = \"tiny\"\n[city]\npreset = \"galaxy\""), "preset must be"),
    (("[window]", "[window"), "not valid TOML"),
])
def test_bad_files_name_what_is_wrong(tmp_path, change, message):
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(")):
        load_scenario(write(tmp_path, GOOD.replace(*change)))


@pytest.mark.parametrize(("line", "message"), [
    ('"http_req_duration" = ["p95<300"]', "is not `aggregation op number`"),
    ('"http_req_duration" = ["p(95) less 300"]', "is not `aggregation op number`"),
    ('"http_req_duration" = ["rate<0.1"]', "has no rate"),
    ('"latency" = ["p(95)<300"]', "unknown metric 'latency'"),
    ('"http_req_duration{name}" = ["p(95)<300"]', "is not `metric` or `metric{tag:value}`"),
    ('"http_5xx" = []', "needs a list of expressions"),
])
def test_malformed_thresholds_name_their_line(tmp_path, line, message):
    text = GOOD + line + "\n"
    with pytest.raises(ThresholdError) as caught:
        load_scenario(write(tmp_path, text))
    assert f"scenario.toml:{len(text.splitlines())}" in str(caught.value)
    assert message in str(caught.value)


def test_unknown_scenario_lists_the_shipped_ones():
    with pytest.raises(ScenarioError, match=r"shipped: .*smoke"):
        load_scenario("no-such-scenario")


def test_thresholds_judge_observed_values():
    thresholds = parse_thresholds({
        "http_req_duration{name:create_order}": ["p(50)<=20", "max<100"],
        "order_completion": ["rate>0.9"], "oversold": ["count==0"],
        "sessions_late": ["rate<0.01"]})
    canary = {"latencies_ms": {"create_order": [float(v) for v in range(1, 101)],
                               "login": [1.0]},
              "failures": {}, "server_errors": 0, "orders": {},
              "funnel": {"session": 100, "paying": 10, "completed": 9}}
    client = {"arrival_rate_error": 0.01, "sessions": {"started": 100, "late": 2},
              "sides": {"canary": canary, "baseline": {}}}
    observed = Observed(client, {"mall_stock_oversold_total": 0.0}, "canary")
    values = [observed.value(t) for t in thresholds]
    assert values == [50.0, 100.0, 0.9, 0.0, 0.02]
    assert [t.holds(v) for t, v in zip(thresholds, values, strict=True)] == [
        False, False, False, True, False]
    assert percentile([1.0, 2.0, 3.0, 4.0], 75) == 3.0
