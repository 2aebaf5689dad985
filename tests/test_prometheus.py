"""A real Prometheus (Debian's binary, on 127.0.0.1, temporary storage) scraping two real
malls, a baseline and a canary that misbehaves on purpose: what PromQL reads back for each
side is exactly what the mall's own /metrics page says, and a recording rule and an alert
answer as the shipped rules intend."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitoring.prometheus_server import PrometheusServer
from monitoring.promql_source import instant_samples, query, wait_scraped

from .test_cli import call, serving

pytestmark = [
    pytest.mark.slow,  # a real Prometheus server
    pytest.mark.skipif(
        shutil.which("prometheus") is None,
        reason="no `prometheus` on PATH (.ci/run installs Debian's prometheus package)")]

RUN = "probe-run"
# The canary: every store listing 200 ms slower (one latency bucket, (0.15 s, 0.25 s]),
# every store page refused with a 503.
CANARY_FAULTS = """name = "probe"
seed = 3

[[latency]]
route = "GET /api/v1/stores"
fixed_ms = 200

[[errors]]
route = "GET /api/v1/stores/{store_id}"
rate = 1.0
status = 503
"""
# Its own scrapes change a mall's counts of /metrics between any two readings, so those
# series cannot be compared at one instant; every other series must be equal.
SELF_COUNTED = "/metrics"
# A measurement taken afresh every few milliseconds (the event loop's wait), not a count:
# two scrapes never read it alike.
LIVE = "mall_queue_delay_seconds"


def _browse(base: str) -> None:
    for _ in range(3):
        assert call(f"{base}/api/v1/stores")[0] == 200
    for store in (1, 2):
        call(f"{base}/api/v1/stores/{store}")


def _scraped_directly(base: str) -> dict[tuple, float]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.labels.get("route") != SELF_COUNTED and s.name != LIVE}


def _until(url: str, promql: str, ready, seconds: float = 20) -> list[dict]:
    """Poll an instant query until `ready(rows)`: rules are evaluated every second."""
    deadline = time.monotonic() + seconds
    rows: list[dict] = []
    while time.monotonic() < deadline:
        rows = query(url, promql, time.time())
        if ready(rows):
            return rows
        time.sleep(0.5)
    raise AssertionError(f"{promql} never became ready; last answer {rows}")


@pytest.fixture
def two_malls_scraped(tmp_path: Path):
    faults = tmp_path / "probe.toml"
    faults.write_text(CANARY_FAULTS, encoding="utf-8")
    with contextlib.ExitStack() as stack:
        baseline = stack.enter_context(serving(tmp_path / "baseline.db"))
        canary_stack = stack.enter_context(contextlib.ExitStack())
        canary = canary_stack.enter_context(serving(tmp_path / "canary.db", "--faults",
                                                    str(faults)))
        server = PrometheusServer(tmp_path / "prometheus", RUN,
                                  {"baseline": baseline, "canary": canary})
        server.start()
        stack.callback(server.stop)
        yield server, {"baseline": baseline, "canary": canary}, canary_stack


def test_promql_reads_each_side_as_its_mall_shows_it_and_rules_and_alerts_answer(
        two_malls_scraped):
    server, malls, canary_stack = two_malls_scraped
    # Two rounds of browsing with a scrape between them, so rates see an increase.
    for base in malls.values():
        _browse(base)
    wait_scraped(server.url, RUN, time.time())
    for base in malls.values():
        _browse(base)
    direct = {side: _scraped_directly(base) for side, base in malls.items()}
    at = wait_scraped(server.url, RUN, time.time())

    read_back: dict[str, dict[tuple, float]] = {"baseline": {}, "canary": {}}
    for sample in instant_samples(server.url, at, RUN):
        labels = dict(sample.labels)
        side = labels.pop("side")
        if labels.get("route") != SELF_COUNTED and sample.name != LIVE:
            read_back[side][(sample.name, frozenset(labels.items()))] = sample.value
    for side in malls:
        assert read_back[side] == direct[side], side
    listing = ("mall_http_requests_total", frozenset(
        {"method": "GET", "route": "/api/v1/stores", "status_class": "2xx"}.items()))
    assert direct["baseline"][listing] == direct["canary"][listing] == 6
    refused = ("mall_http_requests_total", frozenset(
        {"method": "GET", "route": "/api/v1/stores/{store_id}", "status_class": "5xx"}.items()))
    assert direct["canary"][refused] == 4 and refused not in direct["baseline"]

    # Recording rules: the canary's listing p95 lies in the bucket its 200 ms fell into; the
    # 5xx ratio is above 0 on the canary and exactly 0 (not absent) on the baseline.
    p95 = _until(server.url, f'side_route:mall_http_request_duration_seconds:p95_1m'
                 f'{{run="{RUN}", route="/api/v1/stores"}}',
                 lambda rows: len(rows) == 2 and all(r["value"][1] != "NaN" for r in rows))
    p95 = {r["metric"]["side"]: float(r["value"][1]) for r in p95}
    assert 0.15 < p95["canary"] <= 0.25 and p95["baseline"] < p95["canary"], p95
    # Until the rule has been evaluated on the scrape after the second round: on a busy
    # machine an earlier evaluation (both series there, no increase seen yet) answers first.
    ratio = _until(server.url, f'side:mall_http_requests_5xx:ratio_1m{{run="{RUN}"}}',
                   lambda rows: len(rows) == 2 and any(float(r["value"][1]) > 0
                                                       for r in rows))
    ratio = {r["metric"]["side"]: float(r["value"][1]) for r in ratio}
    assert ratio["baseline"] == 0 and 0 < ratio["canary"] < 1, ratio

    # An alert: nothing is down while both malls answer; stop the canary and TargetDown
    # fires for it (and only it) once `for: 5s` has passed.
    firing = f'ALERTS{{alertname="TargetDown", alertstate="firing", run="{RUN}"}}'
    assert query(server.url, firing, time.time()) == []
    canary_stack.close()
    down = _until(server.url, firing, lambda rows: bool(rows), seconds=40)
    assert [(r["metric"]["side"], r["metric"]["severity"]) for r in down] == [("canary", "page")]
    with urllib.request.urlopen(f"{server.url}/api/v1/alerts", timeout=5) as resp:
        alerts = json.loads(resp.read())["data"]["alerts"]
    summaries = [a["annotations"]["summary"] for a in alerts
                 if a["labels"]["alertname"] == "TargetDown" and a["state"] == "firing"]
    assert summaries == [f"mall canary at {malls['canary'].split('://', 1)[1]} is down"]
