"""The load generator as a run starts it: one Locust process, or Locust's own master with
workers, here (`--workers N`) and on other machines (`--master-bind HOST:PORT
--expect-workers N`, each running `xingcheng loadgen --master HOST:PORT`).

The master walks no session: it waits for every worker, serves their metrics as one scrape
target on the load's metrics port and writes the run's files from their results, so the run
reads one load generator whatever its shape.  A worker that dies or never reports ends the
load with `loadgen-error.json`, which this turns into a harness error naming it."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import loadtests

from . import builds

LOCUSTFILE = Path(loadtests.__file__).with_name("locustfile.py")
LOCAL_WAIT_S = 60      # for workers started here to connect
REMOTE_WAIT_S = 600    # for workers on other machines, started by hand


class LoadError(Exception):
    """The load generator failed (a harness error, not a verdict on the mall)."""


@dataclass(frozen=True)
class LoadShape:
    """How the load is generated: `workers` Locust workers started here (0: one process
    walks everything), `expect_workers` more on other machines, reaching the master at
    `master_bind`."""

    workers: int = 0
    master_bind: str = ""
    expect_workers: int = 0

    def __post_init__(self) -> None:
        if self.expect_workers and not self.master_bind:
            raise ValueError("--expect-workers needs --master-bind HOST:PORT (where the "
                             "workers on other machines reach the master)")
        if self.master_bind:
            host, _, port = self.master_bind.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"--master-bind {self.master_bind}: give HOST:PORT")

    @property
    def distributed(self) -> bool:
        return bool(self.workers or self.expect_workers)

    @property
    def total(self) -> int:
        return self.workers + self.expect_workers

    def describe(self) -> str:
        if not self.distributed:
            return "one Locust process"
        return (f"Locust master and {self.total} workers"
                + (f" ({self.expect_workers} from other machines via {self.master_bind})"
                   if self.expect_workers else ""))


ONE_PROCESS = LoadShape()


def worker_command(master: str) -> list[str]:
    """A Locust worker of this harness's load (what `xingcheng loadgen` runs): it gets the
    scenario and every setting from the master."""
    host, _, port = master.rpartition(":")
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
            "--master-host", host, "--master-port", port, "--loglevel", "WARNING"]


class LoadGenerator:
    """Started by `start`, stopped (every process it started) by `stop`."""

    def __init__(self, command: list[str], shape: LoadShape, report_dir: Path) -> None:
        self.command = command         # one process's command (locust_command)
        self.shape = shape
        self.report_dir = report_dir
        self.master: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.logs: list = []

    def start(self) -> LoadGenerator:
        command = list(self.command)
        if self.shape.distributed:
            bind = self.shape.master_bind or f"127.0.0.1:{builds.free_port()}"
            host, _, port = bind.rpartition(":")
            wait = REMOTE_WAIT_S if self.shape.expect_workers else LOCAL_WAIT_S
            command += ["--master", "--master-bind-host", host, "--master-bind-port", port,
                        "--expect-workers", str(self.shape.total),
                        "--expect-workers-max-wait", str(wait)]
            command[command.index("--users") + 1] = str(self.shape.total)
        self.master = self._popen(command, "loadgen.log")
        if self.shape.distributed:
            reach = "127.0.0.1" if host in ("0.0.0.0", "*", "") else host
            self.workers = [self._popen(worker_command(f"{reach}:{port}"),
                                        f"loadgen-worker-{n + 1}.log")
                            for n in range(self.shape.workers)]
        return self

    def _popen(self, command: list[str], log_name: str) -> subprocess.Popen:
        log = (self.report_dir / log_name).open("w")
        self.logs.append(log)
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def poll(self) -> int | None:
        assert self.master is not None
        return self.master.poll()

    def stop(self) -> None:
        for process in (self.master, *self.workers):
            builds.stop(process)
        for log in self.logs:
            log.close()

    def check(self) -> None:
        """After the load: a harness error if it failed (a worker named where one did)."""
        failed = self.report_dir / "loadgen-error.json"
        if failed.exists():
            raise LoadError(json.loads(failed.read_text())["error"])
        assert self.master is not None
        if self.master.returncode != 0:
            log = self.report_dir / "loadgen.log"
            raise LoadError(f"locust exited with {self.master.returncode}; see {log}: "
                            f"{_last_line(log)}")

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][-300:] if lines else "(empty log)"
