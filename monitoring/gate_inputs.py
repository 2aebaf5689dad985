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

import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass
class Buckets:
    """A histogram as exported: upper bounds (`le`, the last +Inf) and cumulative counts.

    `integer` marks a histogram of whole numbers (items in a basket), whose buckets hold
    known values rather than a continuous range."""

    cumulative: dict[float, float] = field(default_factory=dict)
    integer: bool = False

    def add(self, le: str, value: float) -> None:
        bound = math.inf if le == "+Inf" else float(le)
        self.cumulative[bound] = self.cumulative.get(bound, 0.0) + value

    @property
    def total(self) -> int:
        """Observations: the +Inf bucket's count (the largest count if +Inf is missing)."""
        if not self.cumulative:
            return 0
        return round(self.cumulative.get(math.inf, max(self.cumulative.values())))

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Each non-empty bucket's representative value and how many observations fell in it.

        A bucket (a, b] stands for its geometric middle sqrt(a * b): the layouts grow by a
        fixed ratio, so that is where the bucket's middle lies on the log scale rank tests and
        shifts care about.  The +Inf bucket is taken at the last finite bound (nothing says
        how far beyond it), a bucket ending at 0 at 0, and a first bucket, or one starting at
        0, as one layout step wide.  Whole-number buckets stand for the middle of the whole
        numbers they hold ((1, 2] holds only 2)."""
        bounds = sorted(self.cumulative)
        finite = [b for b in bounds if math.isfinite(b) and b > 0]
        step = finite[1] / finite[0] if len(finite) > 1 else 2.0
        values, counts = [], []
        previous: float | None = None
        seen = 0.0
        for bound in bounds:
            count = round(self.cumulative[bound] - seen)
            seen = max(seen, self.cumulative[bound])
            if count > 0:
                values.append(self._representative(previous, bound, step, finite))
                counts.append(count)
            previous = bound
        return np.asarray(values, dtype=float), np.asarray(counts, dtype=np.int64)

    def _representative(self, low: float | None, high: float, step: float,
                        finite: list[float]) -> float:
        if math.isinf(high):
            return finite[-1] if finite else 0.0
        if high <= 0:
            return 0.0
        if self.integer:
            return high if low is None else (math.floor(low) + 1 + high) / 2
        if low is None or low <= 0:
            return high / math.sqrt(step)
        return math.sqrt(low * high)

    def expanded(self) -> np.ndarray:
        """One value per observation (bucket representatives repeated), for rank tests."""
        values, counts = self.counts()
        return np.repeat(values, counts)


@dataclass
class SideData:
    """One side's numbers, as the gate needs them."""

    latency: dict[str, Buckets] = field(default_factory=lambda: defaultdict(Buckets))
    requests: float = 0.0
    failed: float = 0.0
    server_errors: float = 0.0
    funnel: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    session_gmv: Buckets = field(default_factory=Buckets)
    basket: Buckets = field(default_factory=lambda: Buckets(integer=True))
    oversold: float | None = None


def by_side(samples: Iterable[Sample]) -> dict[str, SideData]:
    """Sum the samples per side (labels other than side and le add up: persona, district,
    status class); samples without a side are not the gate's."""
    sides: dict[str, SideData] = defaultdict(SideData)
    for sample in samples:
        side = sample.labels.get("side")
        if side is None:
            continue
        data, name, labels = sides[side], sample.name, sample.labels
        if name == "loadgen_request_duration_seconds_bucket":
            data.latency[labels.get("name", "")].add(labels["le"], sample.value)
        elif name == "loadgen_requests_total":
            data.requests += sample.value
            if labels.get("status_class") == "5xx":
                data.server_errors += sample.value
        elif name == "loadgen_request_failures_total":
            data.failed += sample.value
        elif name == "loadgen_funnel_total":
            data.funnel[labels.get("stage", "")] += sample.value
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


def between(before: list[Sample], after: list[Sample]) -> list[Sample]:
    """What happened between two readings of the same counters and histograms: each sample
    of `after` less the same series in `before` (a series new since then counts whole).  A
    rollout judges each step on its own samples this way, from cumulative pages."""
    earlier = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in before}
    return [Sample(s.name, s.labels, s.value - earlier.get((s.name, tuple(sorted(
        s.labels.items()))), 0.0)) for s in after]
