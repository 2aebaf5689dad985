"""Several processes serving one port, as production runs the mall: each worker binds the port
with SO_REUSEPORT (the kernel spreads new connections among them) and runs a whole mall of
its own (event loop, pool, caches, sweeper); a supervisor starts them, starts another in
place of one that dies, and stops them all on SIGTERM or SIGINT.

What each worker counts is summed across workers by prometheus_client's multiprocess mode:
every worker writes its metrics to files in one folder (PROMETHEUS_MULTIPROC_DIR, set here
before any metric exists) and whichever worker answers /metrics reads them all.  What each
worker keeps in memory, and how it stays exact, is in docs/scale.md."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable

log = logging.getLogger("mall.workers")
METRICS_FOLDER = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_folder() -> str | None:
    """A fresh folder for the workers' metrics (before prometheus_client is imported);
    the folder's path when this call made it, to remove at the end."""
    if os.environ.get(METRICS_FOLDER):
        return None
    folder = tempfile.mkdtemp(prefix="xingcheng-metrics-")
    os.environ[METRICS_FOLDER] = folder
    return folder


def supervise(count: int, run_worker: Callable[[int], None], *,
              restart_delay: float = 0.5) -> int:
    """Run `run_worker(n)` in `count` forked processes until told to stop; 0 when stopped
    by a signal.  A worker that exits on its own is replaced after `restart_delay`."""
    from prometheus_client import multiprocess

    workers: dict[int, int] = {}
    stopping = False

    def start(number: int) -> None:
        pid = os.fork()
        if pid == 0:   # the worker: default signal handling, then the mall until stopped
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                run_worker(number)
                code = 0
            except BaseException:
                log.exception("worker %d failed", number)
            finally:
                os._exit(code)
        workers[pid] = number
        log.info("worker %d started (pid %d)", number, pid)

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for number in range(count):
        start(number)
    while workers:
        pid, status = os.wait()
        number = workers.pop(pid, None)
        if number is None:
            continue
        multiprocess.mark_process_dead(pid)
        if not stopping:
            log.warning("worker %d (pid %d) exited (%s); starting another", number, pid,
                        _exit_text(status))
            time.sleep(restart_delay)
            if not stopping:
                start(number)
    return 0


def _exit_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit {os.WEXITSTATUS(status)}"


def remove_metrics_folder(folder: str | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
