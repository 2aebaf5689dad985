"""Crashes on purpose: `xingcheng run ... --kill baseline@40 --kill payer@70+3` kills a
process of the run with SIGKILL at a moment of the load (real seconds after the clock's
anchor) and starts it again, with the same command on the same port and database, after it
has been down a while (2 s unless `+SECONDS`).  The run then shows what a crash costs: which
requests failed while something was down (connection errors apart), and whether any failed
outside those windows, which a crash-safe mall never lets happen.  `postgres@SECONDS` (runs on
`--engine postgresql` against the local server) stops the PostgreSQL cluster as a crash
does (`pg_ctlcluster ... stop -m immediate`: no checkpoint, recovery at start) and starts it
again: the malls answer 503 meanwhile and their pools reconnect by themselves."""

from __future__ import annotations

import asyncio
import csv
import gzip
import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mall.storage.engines import read_only

from . import cores

TARGETS = ("baseline", "canary", "payer", "postgres")
_SPEC = re.compile(r"^(baseline|canary|payer|postgres)@([0-9]+(?:\.[0-9]+)?)"
                   r"(?:\+([0-9]+(?:\.[0-9]+)?))?$")
# Seconds after a restarted process answers /readyz during which clients may still fail:
# journeys already past their request when it came back, keep-alive connections redialled.
GRACE_S = 1.0


class CrashSpecError(ValueError):
    """A --kill option that names no process of the run or no moment."""


@dataclass
class Crash:
    target: str
    at_s: float
    down_s: float = 2.0
    killed_s: float | None = None    # real seconds after the anchor, as it happened
    back_s: float | None = None      # when it answered /readyz again

    @classmethod
    def parse(cls, spec: str) -> Crash:
        match = _SPEC.match(spec.strip())
        if match is None:
            raise CrashSpecError(f"--kill {spec!r}: expected WHO@SECONDS[+DOWN_SECONDS] with "
                                 f"WHO one of {', '.join(TARGETS)}, e.g. baseline@40+3")
        return cls(match[1], float(match[2]), float(match[3]) if match[3] else 2.0)


@dataclass
class Restartable:
    """How the harness kills one of its processes and brings it back."""

    kill: Callable[[], None]
    restart: Callable[[], None]      # returns once the process answers again


@dataclass
class Crashes:
    """Runs the crash schedule in a thread of its own, beside the load."""

    crashes: list[Crash]
    since: float
    processes: dict[str, Restartable]
    errors: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        missing = {c.target for c in self.crashes} - set(self.processes)
        if missing:
            raise CrashSpecError(f"--kill names {', '.join(sorted(missing))}, which this run "
                                 "does not start")
        self._thread = threading.Thread(target=self._run, name="crashes", daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        for crash in sorted(self.crashes, key=lambda c: c.at_s):
            time.sleep(max(0.0, self.since + crash.at_s - time.time()))
            process = self.processes[crash.target]
            crash.killed_s = time.time() - self.since   # before the signal: its first victims
            process.kill()
            time.sleep(crash.down_s)
            try:
                process.restart()
            except Exception as exc:  # reported with the run, never a silent stop
                self.errors.append(f"{crash.target} did not come back: {exc}")
                return
            crash.back_s = time.time() - self.since

    def facts(self) -> list[dict]:
        return [{"target": c.target, "at_s": c.at_s, "down_s": c.down_s,
                 "killed_s": _round(c.killed_s), "back_s": _round(c.back_s)}
                for c in self.crashes]


def postgres_cluster(cluster: tuple[str, str] = ("15", "main")) -> Restartable:
    """The local PostgreSQL cluster as a process the schedule may crash."""
    def stop() -> None:
        subprocess.run(["pg_ctlcluster", *cluster, "stop", "-m", "immediate"], check=True,
                       capture_output=True, timeout=60)

    def start() -> None:
        # The server on every core of the machine, as it was started before the run: not
        # on the harness's own narrowed set, which its children inherit (cores.py), and
        # which would leave the database on the load generator's core after the run.
        every_core = ",".join(str(core) for core in sorted(cores.MACHINE))
        subprocess.run(["taskset", "--cpu-list", every_core, "pg_ctlcluster", *cluster,
                        "start"], check=True, capture_output=True, timeout=120)
        for _ in range(300):
            if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"],
                              timeout=10).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("PostgreSQL did not accept connections within 30 s")

    return Restartable(stop, start)


def kill(process) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait()


def client_errors(requests_csv: Path, crashes: list[Crash]) -> dict:
    """What clients saw: failed requests inside a window when a process was down (from its
    kill to GRACE_S after it answered again; connection errors counted apart), and outside.
    A mall's crash touches that side's requests; the payer's and the database's every
    side's."""
    windows = [(c.target, c.killed_s, (c.back_s or float("inf")) + GRACE_S)
               for c in crashes if c.killed_s is not None]
    seen = {"requests": 0, "connection_errors": 0, "failed_while_down": 0,
            "failed_outside": 0, "outside_examples": []}
    with gzip.open(requests_csv, "rt", newline="") as rows:
        for row in csv.DictReader(rows):
            seen["requests"] += 1
            if row["failed"] != "1":
                continue
            t, side = float(row["t_s"]), row["side"]
            if any(start <= t <= end and target in (side, "payer", "postgres")
                   for target, start, end in windows):
                seen["failed_while_down"] += 1
                seen["connection_errors"] += row["status"] == "0"
            else:
                seen["failed_outside"] += 1
                if len(seen["outside_examples"]) < 5:
                    seen["outside_examples"].append(
                        f"{row['t_s']}s {side} {row['name']} {row['status']}")
    return seen


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def payments_agree(mall_db: Path | str, payer_db: Path) -> dict:
    """The mall and the payer on every payment, read from their databases: charged at the
    payer but not settled in the mall (lost), settled but not charged, amounts that differ,
    and orders settled twice."""
    async def read_mall() -> tuple[list, int]:
        conn = await read_only(mall_db)
        try:
            rows = await conn.execute_fetchall(
                "SELECT out_trade_no, status, amount_fen FROM payments")
            twice = await conn.execute_fetchall(
                "SELECT count(*) FROM (SELECT order_id FROM payments WHERE status ="
                " 'succeeded' GROUP BY order_id HAVING count(*) > 1) AS settled")
            return list(rows), twice[0][0]
        finally:
            await conn.close()

    rows, twice = asyncio.run(read_mall())
    mall = {row[0]: tuple(row[1:]) for row in rows}
    with sqlite3.connect(f"{payer_db.resolve().as_uri()}?mode=ro", uri=True) as conn:
        payer = {row[0]: row[1:] for row in conn.execute(
            "SELECT out_trade_no, trade_state, amount_fen FROM transactions")}
    charged = {k for k, (state, _) in payer.items() if state == "SUCCESS"}
    settled = {k for k, (status, _) in mall.items() if status == "succeeded"}
    return {"charged": len(charged), "lost": len(charged - settled),
            "not_charged": len(settled - charged),
            "amount_differs": sum(payer[k][1] != mall[k][1] for k in charged & settled),
            "settled_twice": twice}
