"""Which cores the processes of a run may use: the malls under test apart from the load.

On one machine the load generator, the payment sandbox and the harness take the mall's core
from under it at the crest, and a request then waits for the scheduler: the clients' p95
measures the neighbours, not the mall (late-night crest on 2 cores, create_order p95 at the
clients 34 ms with every process on both cores, 16.5 ms with the mall on a core of its own;
at the mall's own histogram 1.5 ms either way).  In production the load comes from other
machines.  So each mall the run starts gets a core for each of its processes (one, or its
`--workers`) when the machine has that many for every mall and at least one left for the
rest (as benchmarks/mall_throughput.py keeps wrk off the server's core); otherwise nothing is
pinned.  Two workers kept to one core starved there: on PostgreSQL at the late-night crest
they had 0.77 of their core, its database backends the rest, while the other core stood
15% idle (create_order p95 1,352-1,545 ms pinned, 1,113 ms shared).  `xingcheng run
--no-pin` shares them all."""

from __future__ import annotations

import os
from dataclasses import dataclass

# The cores this process was given, read once: the harness narrows its own set while it runs.
MACHINE: frozenset[int] = frozenset(os.sched_getaffinity(0))


@dataclass(frozen=True)
class Placement:
    malls: dict[str, frozenset[int]]   # side -> its cores
    rest: frozenset[int]               # the harness, the load generator and the payer

    def describe(self) -> str:
        def cores(of: frozenset[int]) -> str:
            return ",".join(str(core) for core in sorted(of))

        malls = "; ".join(f"{side} mall on core {cores(of)}" for side, of in self.malls.items())
        return f"{malls}; load, payer and harness on {cores(self.rest)}"


def place(sides: list[str], pin: bool = True, processes: int = 1) -> Placement | None:
    """`processes` cores for each mall, the rest for everything else; None when not pinning
    or when the machine has too few."""
    cores = sorted(MACHINE)
    wanted = len(sides) * processes
    if not pin or not sides or len(cores) < wanted + 1:
        return None
    return Placement({side: frozenset(cores[i * processes:(i + 1) * processes])
                      for i, side in enumerate(sides)}, frozenset(cores[wanted:]))


def processes_of(serve_args: tuple[str, ...]) -> int:
    """How many processes each mall runs: the `--workers` among the arguments it is
    served with (`--workers=N` or `--workers N`), else one."""
    for index, arg in enumerate(serve_args):
        value = (arg.partition("=")[2] if arg.startswith("--workers=")
                 else serve_args[index + 1] if arg == "--workers" and index + 1 < len(serve_args)
                 else None)
        if value is not None:
            return int(value) if value.isdigit() and int(value) > 0 else 1
    return 1


def keep_to(cores: frozenset[int], pid: int = 0) -> None:
    """Restrict a process (0: this one; the processes it starts later inherit it)."""
    os.sched_setaffinity(pid, cores)


def release() -> None:
    """This process back on every core it was given."""
    os.sched_setaffinity(0, MACHINE)
