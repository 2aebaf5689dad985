"""The gate's samples read from a Prometheus server over its HTTP API (PromQL): every
`loadgen_*` and `mall_*` series of one run at one instant, in the same shape as a recorded
`/metrics` page parsed back, so the gate judges either source alike."""

from __future__ import annotations

import json
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
