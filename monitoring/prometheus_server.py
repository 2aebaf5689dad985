"""A real Prometheus server for one run: Debian's `prometheus` binary on 127.0.0.1, its
storage in the report folder, the shipped configuration and rules, and the run's targets.

Keeping the TSDB in the report folder means a run can be served again later
(`prometheus --storage.tsdb.path REPORT/prometheus/data ...`) and judged with
`xingcheng gate REPORT --prometheus URL`."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from .promql_source import wait_scraped

SHIPPED = Path(__file__).resolve().parent / "prometheus"


class PrometheusError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrometheusServer:
    def __init__(self, folder: Path, run: str, malls: dict[str, str],
                 loadgen: str | tuple[str, ...] = ()) -> None:
        """`malls` is side -> base URL; `loadgen` the load generator's host:port, if any
        (several: load processes taking turns, as `xingcheng up`'s chunks do)."""
        self.folder = folder
        self.run = run
        self.malls = malls
        self.loadgen = (loadgen,) if isinstance(loadgen, str) else loadgen
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, seconds: float = 30) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise PrometheusError("no `prometheus` on PATH (Debian: apt-get install prometheus)")
        config = self.folder / "config"
        shutil.copytree(SHIPPED / "rules", config / "rules", dirs_exist_ok=True)
        shutil.copy(SHIPPED / "prometheus.yml", config / "prometheus.yml")
        (config / "targets").mkdir(exist_ok=True)
        groups = [{"targets": [url.split("://", 1)[-1]],
                   "labels": {"kind": "mall", "side": side, "run": self.run}}
                  for side, url in self.malls.items()]
        if self.loadgen:
            groups.append({"targets": list(self.loadgen),
                           "labels": {"kind": "loadgen", "run": self.run}})
        (config / "targets" / "run.json").write_text(json.dumps(groups, indent=1))
        log = (self.folder / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [binary, f"--config.file={config / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrometheusError(f"prometheus exited with {self.process.returncode}; "
                                      f"see {self.folder / 'prometheus.log'}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise PrometheusError(f"prometheus at {self.url} was not ready in {seconds:.0f}s")

    def wait_scraped(self, after: float, seconds: float = 15) -> float:
        """Wait until every target of the run has been scraped after Unix time `after`;
        returns the Unix time by which they all had (a safe instant to query at)."""
        try:
            return wait_scraped(self.url, self.run, after, seconds)
        except TimeoutError as exc:
            raise PrometheusError(str(exc)) from exc

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
