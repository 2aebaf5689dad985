"""How the commands that run a load spread it (`--workers`, `--master-bind`,
`--expect-workers`), given to them as one `LoadShape`."""

from __future__ import annotations

import functools

import click


def load_options(command):
    @functools.wraps(command)
    def with_shape(*args, workers: int, master_bind: str | None, expect_workers: int,
                   **kwargs):
        from orchestration.load_generator import LoadShape

        try:
            shape = LoadShape(workers, master_bind or "", expect_workers)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        return command(*args, load=shape, **kwargs)

    with_shape = click.option(
        "--expect-workers", type=click.IntRange(0, 256), default=0, metavar="N",
        help="Wait for N more load workers from other machines (`xingcheng loadgen "
             "--master HOST:PORT` on each) before the load starts.")(with_shape)
    with_shape = click.option(
        "--master-bind", metavar="HOST:PORT",
        help="Where Locust's master listens for load workers on other machines.")(with_shape)
    return click.option(
        "--workers", type=click.IntRange(0, 64), default=0, metavar="N",
        help="Generate the load with Locust's master and N worker processes on this machine, "
             "each starting its share of the one schedule (0: one process).")(with_shape)
