"""What the gate compares, per side, read from metric samples.

Samples are prometheus_client `Sample(name, labels, value)` tuples with a `side` label: a
run's recorded `/metrics` pages give them, and so does a Prometheus server over PromQL, so
the gate judges both sources alike.  Latency comes as histogram buckets, never as raw
response times, because buckets are all a Prometheus server keeps."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass
class Buckets:
    """A histogram: upper bounds (ascending, the last may be +Inf) and cumulative counts."""

    cumulative: dict[float, float] = field(default_factory=dict)

    def add(self, le: str, value: float) -> None:
        bound = math.inf if le == "+Inf" else float(le)
        self.cumulative[bound] = self.cumulative.get(bound, 0.0) + value

    def counts(self) -> tuple[list[float], list[int]]:
        """Each bucket's representative value (its geometric middle; 0 for a bucket that
        ends at 0) and how many observations fell in it."""
        bounds = sorted(self.cumulative)
        finite = [b for b in bounds if math.isfinite(b)]
        ratio = finite[-1] / finite[-2] if len(finite) > 1 and finite[-2] > 0 else 2.0
        values, counts, previous_bound, previous_total = [], [], None, 0.0
        for bound in bounds:
            total = self.cumulative[bound]
            count = round(total - previous_total)
            previous_total = total
            if math.isinf(bound):
                value = finite[-1] * math.sqrt(ratio) if finite else 0.0
            elif bound <= 0:
                value = 0.0
            elif previous_bound is None or previous_bound <= 0:
                value = bound / math.sqrt(ratio) if previous_bound is None else bound / 2
            else:
                value = math.sqrt(previous_bound * bound)
            previous_bound = bound
            if count > 0:
                values.append(value)
                counts.append(count)
        return values, counts

    @property
    def total(self) -> int:
        return round(self.cumulative.get(math.inf, 0.0))


@dataclass
class SideData:
    latency: dict[str, Buckets] = field(default_factory=lambda: defaultdict(Buckets))
    requests: float = 0.0
    failed: float = 0.0
    server_errors: float = 0.0
    funnel: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    session_gmv: Buckets = field(default_factory=Buckets)
    basket: Buckets = field(default_factory=Buckets)
    oversold: float | None = None


def by_side(samples: Iterable[Sample]) -> dict[str, SideData]:
    sides: dict[str, SideData] = defaultdict(SideData)
    for sample in samples:
        side = sample.labels.get("side")
        if side is None:
            continue
        data, name, labels = sides[side], sample.name, sample.labels
        if name == "loadgen_request_duration_seconds_bucket":
            data.latency[labels["name"]].add(labels["le"], sample.value)
        elif name == "loadgen_requests_total":
            data.requests += sample.value
            if labels.get("status_class") == "5xx":
                data.server_errors += sample.value
        elif name == "loadgen_request_failures_total":
            data.failed += sample.value
        elif name == "loadgen_funnel_total":
            data.funnel[labels["stage"]] += sample.value
        elif name == "loadgen_session_gmv_yuan_bucket":
            data.session_gmv.add(labels["le"], sample.value)
        elif name == "loadgen_basket_items_bucket":
            data.basket.add(labels["le"], sample.value)
        elif name == "mall_stock_oversold_total":
            data.oversold = (data.oversold or 0.0) + sample.value
    return dict(sides)


def parse(text: str, extra: dict[str, str] | None = None) -> list[Sample]:
    """A `/metrics` page as samples, with `extra` labels added to each (a mall's side)."""
    samples = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.append(Sample(s.name, {**s.labels, **(extra or {})}, s.value))
    return samples


def recorded(report_dir: Path) -> list[Sample]:
    """A run's recorded metrics: the load generator's page and each mall's."""
    path = report_dir / "loadgen-metrics.prom"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: not a report folder of a finished run")
    samples = parse(path.read_text(encoding="utf-8"))
    for mall in sorted(report_dir.glob("mall-*.prom")):
        side = mall.stem.removeprefix("mall-")
        samples += parse(mall.read_text(encoding="utf-8"), {"side": side})
    return samples
