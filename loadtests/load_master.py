"""The Locust master of a load spread over workers: it starts no user of its own, serves the
workers' metrics as one scrape target, and writes the run's files from their results.

Every worker hands in its share's results (a message, so a worker on another machine needs
nothing but the master's address); once all have, the master writes `client.json`, the
request and session rows and the last metrics page exactly as one process would, and ends
the run.  A worker that stops answering, or leaves before handing in, ends the run as a
harness error naming it and the sessions it owed (`loadgen-error.json`, exit code 2): a
share that was never walked must not pass as a light load."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import gevent
from locust.runners import STATE_MISSING, MasterRunner

from .arrivals import ArrivalLog
from .merged_metrics import MergedMetrics
from .records import write_rows
from .summary import client_summary, merge_sides

log = logging.getLogger("loadtests")

RESULTS = "xingcheng_results"     # a worker's message: its share's results
HARNESS_ERROR = 2


class LoadMaster:
    def __init__(self, environment, report_dir: Path | None, metrics_port: int,
                 linger: float) -> None:
        self.environment = environment
        self.runner: MasterRunner = environment.runner
        self.expected = environment.parsed_options.expect_workers
        self.report_dir = report_dir
        self.linger = linger
        self.metrics = MergedMetrics()
        if metrics_port:
            self.metrics.serve(metrics_port)
        self.reports: dict[int, dict] = {}    # worker index -> its latest report's facts
        self.results: dict[int, dict] = {}    # worker index -> what it handed in
        self.seen: dict[str, int] = {}        # worker id -> index, once connected
        self.error: str | None = None
        self.written = False
        self.runner.register_message(RESULTS, self._handed_in)
        environment.events.worker_report.add_listener(self._reported)
        environment.events.test_start.add_listener(lambda **_: gevent.spawn(self._watch))
        environment.events.quitting.add_listener(self._quitting)

    def _index(self, worker: str) -> int:
        return self.runner.get_worker_index(worker)

    def _reported(self, client_id: str, data: dict) -> None:
        share = data.get("xingcheng")
        if share is None:
            return
        index = self._index(client_id)
        self.seen.setdefault(client_id, index)
        self.reports[index] = share["facts"]
        self.metrics.update(client_id, share["metrics"])

    def _handed_in(self, environment, msg, **_) -> None:
        index = self._index(msg.node_id)
        self.seen.setdefault(msg.node_id, index)
        self.results[index] = msg.data
        self.reports[index] = msg.data["facts"]
        self.metrics.update(msg.node_id, msg.data["metrics"])
        log.info("load worker %s handed in its results (%d of %d)",
                 self.describe(index), len(self.results), self.expected)

    def describe(self, index: int) -> str:
        facts = self.reports.get(index)
        where = f" on {facts['host']}, pid {facts['pid']}" if facts else ""
        return f"{index + 1} of {self.expected}{where}"

    def _watch(self) -> None:
        """Once a second: every worker still answering, or its results in; all in, the end."""
        while not self.written and self.error is None:
            gevent.sleep(1)
            for worker in list(self.runner.clients):
                self.seen.setdefault(worker, self._index(worker))
            for worker, index in self.seen.items():
                if index in self.results:
                    continue
                node = self.runner.clients.get(worker)
                if node is None:
                    self._fail(index, "left before handing in its results")
                elif node.state == STATE_MISSING:
                    self._fail(index, "stopped answering (no heartbeat)")
            if len(self.results) >= self.expected and self.error is None:
                self._write()
                self.runner.quit()

    def _fail(self, index: int, why: str) -> None:
        if self.error is not None:
            return
        facts = self.reports.get(index)
        if facts is not None:
            owed = (f"it owed {facts['scheduled']} sessions (those numbered {index} modulo "
                    f"{self.expected}), {facts['scheduled'] - facts['started']} of them "
                    "not yet started when last heard")
        else:
            owed = (f"it owed every session numbered {index} modulo {self.expected} and "
                    "never reported")
        self.error = f"load worker {self.describe(index)} {why}: {owed}"
        log.error(self.error)
        if self.report_dir is not None:
            self.report_dir.mkdir(parents=True, exist_ok=True)
            (self.report_dir / "loadgen-error.json").write_text(json.dumps(
                {"error": self.error, "worker": index + 1, "workers": self.expected,
                 "facts": facts}, indent=1))
        self.environment.process_exit_code = HARNESS_ERROR
        gevent.spawn(self.runner.quit)

    def _write(self) -> None:
        if self.written or self.report_dir is None:
            self.written = True
            return
        parts = [self.results[index] for index in sorted(self.results)]
        write_results(self.report_dir, parts, self.metrics.exposition())
        self.written = True
        if self.linger:   # the metrics server thread answers Prometheus's last scrape
            gevent.sleep(self.linger)

    def _quitting(self, **_) -> None:
        if not self.written and self.error is None and self.report_dir is not None:
            missing = [self.describe(i) for i in range(self.expected) if i not in self.results]
            self.error = ("the load ended before every worker handed in its results: "
                          + ", ".join(missing))
            (self.report_dir / "loadgen-error.json").write_text(json.dumps(
                {"error": self.error}, indent=1))
            self.environment.process_exit_code = HARNESS_ERROR


def write_results(folder: Path, parts: list[dict], exposition: bytes) -> None:
    """The run's load files from one process's results or several workers': `client.json`
    (with each worker's arrivals beside the merged ones), the rows, the last metrics page."""
    folder.mkdir(parents=True, exist_ok=True)
    arrivals = ArrivalLog.merged([part["arrivals"] for part in parts])
    summary = client_summary(merge_sides([part["sides"] for part in parts]), arrivals,
                             sum(part["facts"]["cut_off"] for part in parts),
                             sum(part["facts"]["scheduled"] for part in parts),
                             all(part["facts"]["finished"] for part in parts))
    summary["workers"] = [part["facts"] for part in parts]
    (folder / "client.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    (folder / "loadgen-metrics.prom").write_bytes(exposition)
    write_rows(folder, [part["records"] for part in parts])
