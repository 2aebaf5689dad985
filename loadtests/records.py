"""What a run keeps row by row: every request and every session, each with its side.

Metrics answer the gate; these rows answer the report's questions over time (latency
percentiles per step, orders and GMV per minute, the funnel by persona).  Rows are kept in
memory as tuples (a five-minute peak is a few hundred thousand) and written once, gzipped,
when the load ends."""

from __future__ import annotations

import csv
import gzip
import heapq
import time
from dataclasses import dataclass, fields
from pathlib import Path

from .client_metrics import FUNNEL, LoadMetrics
from .sides import BASELINE


@dataclass
class SessionRecord:
    """One shopping session: who, on which side, and how far it got."""

    number: int               # its index in the whole schedule, whichever worker started it
    side: str | None          # None until a gray router's answer says whose session it is
    persona: str
    district: str
    journey: str
    start_s: float
    user_id: int = 0          # the customer (the mall's id, not personal data)
    due_s: float = 0.0        # when the schedule had it start, seconds from the load's origin
    stage: str = "session"
    outcome: str = ""
    items: int = 0
    gmv_fen: int = 0
    ordered_s: float | None = None
    paid_s: float | None = None
    completed_s: float | None = None
    # The A/B experiments' arms the mall told this customer, "key=arm;key=arm" (empty: none).
    arms: str = ""


class RunRecords:
    """Collects request and session rows; times are real seconds since the load began."""

    def __init__(self, metrics: LoadMetrics) -> None:
        self.metrics = metrics
        self.origin = time.monotonic()
        self.requests: list[tuple] = []
        self.sessions: list[SessionRecord] = []
        metrics.listeners.append(self.on_request)

    def now(self) -> float:
        return round(time.monotonic() - self.origin, 3)

    def on_request(self, side: str, name: str, status: int, ms: float, failed: bool) -> None:
        self.requests.append((self.now(), side, name, status, round(ms, 2), int(failed)))

    def begin(self, number: int, side: str | None, persona: str, district: str,
              journey: str, user_id: int, due_s: float) -> SessionRecord:
        """A session on `side`, or on a side to be named later (`assign`)."""
        record = SessionRecord(number, None, persona, district, journey, self.now(), user_id,
                               round(due_s, 3))
        self.sessions.append(record)
        if side is not None:
            self.assign(record, side)
        return record

    def assign(self, record: SessionRecord, side: str) -> None:
        """The session is `side`'s: counted there from its start, once."""
        if record.side is None:
            record.side = side
            self.metrics.funnel.labels(side, record.persona, record.district, "session").inc()

    def reach(self, record: SessionRecord | None, stage: str) -> None:
        """The session got as far as `stage` (each stage is counted once per session)."""
        if record is None or FUNNEL.index(stage) <= FUNNEL.index(record.stage):
            return
        self.assign(record, BASELINE)  # no-op once a side is named, as it is by now
        record.stage = stage
        if stage in ("ordered", "paid", "completed"):
            setattr(record, f"{stage}_s", self.now())
        self.metrics.funnel.labels(record.side, record.persona, record.district, stage).inc()

    def end(self, record: SessionRecord, outcome: str, side: str) -> None:
        """`side`: where the session counts if nothing assigned it (it met only defaults)."""
        self.assign(record, side)
        record.outcome = outcome
        self.metrics.session_gmv.labels(record.side).observe(record.gmv_fen / 100)

    def handed_in(self) -> dict:
        """The rows as plain data, for the master that merges the workers' records."""
        return {"requests": self.requests,
                "sessions": [[getattr(r, n) for n in SESSION_COLUMNS] for r in self.sessions]}

    def write(self, folder: Path) -> None:
        write_rows(folder, [self.handed_in()])


SESSION_COLUMNS = [f.name for f in fields(SessionRecord)]


def write_rows(folder: Path, parts: list[dict]) -> None:
    """`requests.csv.gz` in time order and `sessions.csv.gz` in schedule order, from one
    process's rows or several workers' (times are seconds from the same clock anchor)."""
    requests = heapq.merge(*(part["requests"] for part in parts), key=lambda row: row[0])
    with gzip.open(folder / "requests.csv.gz", "wt", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(("t_s", "side", "name", "status", "ms", "failed"))
        writer.writerows(requests)
    sessions = sorted((row for part in parts for row in part["sessions"]), key=lambda r: r[0])
    with gzip.open(folder / "sessions.csv.gz", "wt", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(SESSION_COLUMNS)
        writer.writerows(["" if value is None else value for value in row] for row in sessions)
