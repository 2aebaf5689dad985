"""The load's metrics as one scrape target when several Locust workers generate it.

Each worker sends the master a snapshot of its registry with every report (Locust's
`report_to_master`, every few seconds) and a last one with its results; the master serves
their sum under the same names, labels and types as one process would, so the live table,
Prometheus and its rules see a single load generator whatever the number of workers.
Counters and histogram buckets add up; of the gauges, the simulated clock is the latest any
worker shows, `loadgen_run_finished` holds only once every worker's share has finished, and
the rest (sessions walking, target and achieved rates) add up."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import Metric

# A snapshot: [[family name, type, help, [[sample name, labels, value], ...]], ...]
Snapshot = list

LATEST = {"loadgen_simulated_time_seconds"}
ALL = {"loadgen_run_finished"}


def snapshot(registry: CollectorRegistry) -> Snapshot:
    return [[family.name, family.type, family.documentation,
             [[s.name, s.labels, s.value] for s in family.samples]]
            for family in registry.collect()]


class MergedMetrics:
    """A collector over the workers' latest snapshots."""

    def __init__(self) -> None:
        self.snapshots: dict[str, Snapshot] = {}   # worker id -> its latest
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def update(self, worker: str, latest: Snapshot) -> None:
        self.snapshots[worker] = latest

    def describe(self) -> list[Metric]:
        return []   # learnt from the workers' snapshots, not known when registered

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        values: dict[str, dict[tuple, float]] = {}
        for latest in list(self.snapshots.values()):
            for name, kind, documentation, samples in latest:
                if name not in families:
                    families[name] = Metric(name, documentation, kind)
                    values[name] = {}
                into = values[name]
                for sample, labels, value in samples:
                    key = (sample, tuple(sorted(labels.items())))
                    into[key] = _combine(sample, into.get(key), value)
        for name, family in families.items():
            for (sample, labels), value in values[name].items():
                family.add_sample(sample, dict(labels), value)
            yield family

    def serve(self, port: int) -> None:
        start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _combine(sample: str, before: float | None, value: float) -> float:
    if before is None:
        return value
    if sample in LATEST:
        return max(before, value)
    if sample in ALL or sample.endswith("_created"):
        return min(before, value)
    return before + value
