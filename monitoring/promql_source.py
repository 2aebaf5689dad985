"""The gate's samples read from a Prometheus server over its HTTP API (PromQL): every
`loadgen_*` and `mall_*` series of one run at one instant, in the same shape as a recorded
`/metrics` page parsed back, so the gate judges either source alike."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

from prometheus_client.samples import Sample

DROPPED = ("__name__", "job", "instance", "run")


def query(base_url: str, promql: str, at: float) -> list[dict]:
    url = f"{base_url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode(
        {"query": promql, "time": f"{at:.3f}"})
    with urllib.request.urlopen(url, timeout=30) as resp:
        body = json.loads(resp.read())
    if body.get("status") != "success":
        raise ValueError(f"prometheus refused {promql!r}: {body.get('error')}")
    return body["data"]["result"]


def instant_samples(base_url: str, at: float, run: str) -> list[Sample]:
    """Every series of the run at Unix time `at`, labels as exported plus `side`."""
    selector = f'{{__name__=~"loadgen_.+|mall_.+", run="{run}"}}'
    samples = []
    for series in query(base_url, selector, at):
        metric = series["metric"]
        labels = {k: v for k, v in metric.items() if k not in DROPPED}
        samples.append(Sample(metric["__name__"], labels, float(series["value"][1])))
    if not samples:
        raise ValueError(f"prometheus at {base_url} holds no series of run {run!r} at {at}")
    return samples


def _run_targets(base_url: str, run: str) -> int:
    url = f"{base_url.rstrip('/')}/api/v1/targets?state=active"
    with urllib.request.urlopen(url, timeout=30) as resp:
        targets = json.loads(resp.read())["data"]["activeTargets"]
    return sum(t["labels"].get("run") == run for t in targets)


def wait_scraped(base_url: str, run: str, after: float, seconds: float = 15) -> float:
    """Wait until every target of the run has been scraped successfully after Unix time
    `after`; returns a Unix time to query at that sees those scrapes.

    It reads `timestamp(up)` rather than the targets page's lastScrape: Prometheus reports
    lastScrape before it commits the scrape's samples, while `up` is committed with them, so a
    query cannot see the new `up` without the samples that came with it."""
    deadline = time.monotonic() + seconds
    stamps: list[float] = []
    expected = 0
    while time.monotonic() < deadline:
        expected = _run_targets(base_url, run)
        now = time.time()
        # timestamp() gives the scrape's own time only on a bare selector (on anything else it
        # gives the evaluation time), so health is read apart and matched by instance.
        healthy = {row["metric"]["instance"] for row in query(base_url, f'up{{run="{run}"}}', now)
                   if row["value"][1] == "1"}
        stamps = [float(row["value"][1])
                  for row in query(base_url, f'timestamp(up{{run="{run}"}})', now)
                  if row["metric"]["instance"] in healthy]
        if expected and len(stamps) == expected and min(stamps) > after:
            return max(stamps) + 0.001
        time.sleep(0.2)
    raise TimeoutError(f"prometheus at {base_url}: {len(stamps)} of the {expected} targets of "
                       f"run {run!r} scraped up after {after:.3f} within {seconds:.0f}s")
