"""HAProxy as the gray router's data path (`xingcheng router --engine haproxy`, the default).

A request through a Python proxy costs two more trips through an interpreter's event loop:
+0.37 ms on a 0.47 ms catalogue page, where the router may add 15%.  So the decisions of
`rules.py` are written once more as HAProxy rules (`haproxy.cfg`, same order, same
meaning), HAProxy carries every request, and the Python router keeps what needs a program:
the admin API, the audit, resolving districts to stores, and the metrics, which it reads
from HAProxy's log (one line per request, on HAProxy's standard output).

Rules change at runtime through HAProxy's stats socket: one map swapped whole (prepare,
fill, commit), with a new epoch that forgets every session; no reload, so no client loses
its keep-alive connection in the middle of a rollout."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
from pathlib import Path
from urllib.parse import urlsplit

from .metrics import RouterMetrics
from .rules import SIDES, Decision

CONFIG = Path(__file__).with_name("haproxy.cfg")
# HAProxy's termination state: the first letter says who ended the stream; S: the server
# (refused, reset), s: the server's timeout.  With a 5xx that HAProxy made itself it tells
# an unreachable mall from a slow one; a mall's own 5xx ends normally ("--").
_OWN_ERRORS = {"S": "unreachable", "s": "timeout"}
LOG_READ_EVERY_S = 0.2
CANARY_CODE = "2"   # sides in the rules map, as numbers (all its values are): 1 baseline


def server_address(url: str) -> str:
    """host:port of a mall's base URL; HAProxy speaks plain HTTP to the malls."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.path.strip("/"):
        raise ValueError(f"{url!r}: the haproxy engine needs http://HOST:PORT with no path")
    return f"{parts.hostname}:{parts.port or 80}"


def rules_map(decision: Decision, epoch: int) -> list[tuple[str, str]]:
    rules = decision.rules
    return [("epoch", str(epoch)), ("share", str(round(rules.share * 10_000))),
            ("by_store", str(int(decision.by_store))), ("tester", str(int(rules.tester_header))),
            *((str(store), CANARY_CODE) for store in sorted(decision.canary_stores))]


class HaproxyFront:
    """One HAProxy process in front of the two malls, started on the first rules."""

    def __init__(self, *, listen: tuple[str, int], baseline: str, canary: str,
                 timeout_s: float, workdir: Path, metrics: RouterMetrics) -> None:
        binary = shutil.which("haproxy")
        if binary is None:
            raise RuntimeError("haproxy is not installed (apt-get install haproxy), or run "
                               "the router with --engine python")
        self.binary = binary
        self.workdir = workdir
        self.map_path = workdir / "rules.map"
        self.socket_path = workdir / "haproxy.sock"
        self.metrics = metrics
        self.env = {**os.environ, "XC_DIR": str(workdir), "XC_RULES": str(self.map_path),
                    "XC_BIND": f"{listen[0]}:{listen[1]}",
                    "XC_BASELINE": server_address(baseline),
                    "XC_CANARY": server_address(canary), "XC_TIMEOUT": f"{timeout_s:g}s"}
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        self._log_fd: int | None = None

    async def put(self, decision: Decision, epoch: int) -> None:
        """Put these rules in force: at start-up in the map file HAProxy starts from, later
        through the stats socket, all entries at once."""
        entries = rules_map(decision, epoch)
        lines = "".join(f"{key} {value}\n" for key, value in entries)
        staged = self.map_path.with_suffix(".new")
        staged.write_text(lines)
        staged.replace(self.map_path)        # what a restarted HAProxy would start from
        if self.process is None:
            await self._start()
            return
        prepared = await self.command(f"prepare map {self.map_path}")
        version = prepared.rsplit(":", 1)[-1].strip()
        if not prepared.startswith("New version") or not version.isdigit():
            raise RuntimeError(f"haproxy refused to prepare the rules map: {prepared!r}")
        await self._quietly(f"add map @{version} {self.map_path} <<\n{lines}")
        await self._quietly(f"commit map @{version} {self.map_path}")
        await self._quietly("clear table sessions")   # stale already by the epoch; frees them

    async def command(self, text: str) -> str:
        """One command on HAProxy's stats socket, and its answer."""
        reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
        try:
            writer.write(text.encode() + b"\n")
            await writer.drain()
            answer = (await reader.read()).decode(errors="replace").strip()
        finally:
            writer.close()
        return answer

    async def _quietly(self, text: str) -> None:
        """A command that answers nothing when it works."""
        answer = await self.command(text)
        if answer:
            raise RuntimeError(f"haproxy refused '{text.split(chr(10))[0]}': {answer}")

    async def _start(self) -> None:
        # HAProxy's log goes into a pipe read in batches, a few times a second: read line by
        # line, every request would wake the router's Python once more on the gateway's core,
        # which cost more than HAProxy's whole hop.  The pipe is large and HAProxy's end does
        # not block: past a full pipe, log lines (metrics) are lost, never requests delayed.
        self._log_fd, log_out = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._log_fd, fcntl.F_SETPIPE_SZ, 1 << 20)
        os.set_blocking(self._log_fd, False)
        os.set_blocking(log_out, False)
        errors_path = self.workdir / "haproxy.err"
        with errors_path.open("wb") as errors:
            self.process = await asyncio.create_subprocess_exec(
                self.binary, "-db", "-f", str(CONFIG), env=self.env, stdout=log_out,
                stderr=errors, preexec_fn=_die_with_parent)
        os.close(log_out)
        self._reader = asyncio.create_task(self._read_log())
        for _ in range(200):                       # the stats socket answers once it runs
            if self.process.returncode is not None:
                break
            with contextlib.suppress(OSError):
                await self.command("show info")
                return
            await asyncio.sleep(0.025)
        await self.stop()
        raise RuntimeError("haproxy did not start: "
                           f"{errors_path.read_text(errors='replace')[-2000:]}")

    async def _read_log(self) -> None:
        """Each request's log line into the router's metrics: side, status, outcome."""
        pending = b""
        assert self._log_fd is not None
        while True:
            await asyncio.sleep(LOG_READ_EVERY_S)
            try:
                while chunk := os.read(self._log_fd, 1 << 20):
                    pending += chunk
            except BlockingIOError:
                pass
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._count(line.decode(errors="replace").split())

    def _count(self, parts: list[str]) -> None:
        if len(parts) != 4 or parts[0] not in SIDES:
            return                                 # not a request to a mall
        side, status, ended, micros = parts
        if not (status.isdigit() and micros.lstrip("-").isdigit()):
            return
        code = int(status)
        outcome = f"{code // 100}xx"
        if code in (502, 503, 504) and ended[:1] in _OWN_ERRORS:
            outcome = _OWN_ERRORS[ended[:1]]
        self.metrics.observe(side, outcome, max(int(micros), 0) / 1e6)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGUSR1)   # soft stop: finish what is in flight
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None


# libc looked up in the parent: the child between fork and exec must not take the dynamic
# loader's lock, which another thread may have held at the fork.
_LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """HAProxy goes when the router goes, even by SIGKILL (Linux's PR_SET_PDEATHSIG)."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
