"""The `--db` of every command that opens the mall's database: a SQLite file path (the
embedded default) or a `postgresql://` URL."""

from __future__ import annotations

from pathlib import Path

import click

from mall.storage.engines import target_of
from mall.storage.postgres_databases import LOCAL_SERVER


class DatabaseTarget(click.ParamType):
    name = "FILE|URL"

    def __init__(self, exists: bool = False) -> None:
        self.exists = exists   # a file must be there already (not made anew, empty)

    def convert(self, value, param, ctx) -> Path | str:
        target = value if isinstance(value, Path) else target_of(str(value))
        if self.exists and isinstance(target, Path) and not target.is_file():
            self.fail(f"File '{target}' does not exist.", param, ctx)
        return target


DATABASE = DatabaseTarget()
EXISTING_DATABASE = DatabaseTarget(exists=True)


def engine_options(command):
    """`--engine` and `--postgres` of the commands that start malls for a run."""
    command = click.option(
        "--postgres", "postgres_server", default=LOCAL_SERVER, show_default=True,
        metavar="URL", help="The PostgreSQL server where --engine postgresql makes (and "
        "drops) each side's database.")(command)
    return click.option(
        "--engine", type=click.Choice(["sqlite", "postgresql"]), default="sqlite",
        show_default=True, help="Each side's database: a SQLite file in the report folder, "
        "or a PostgreSQL database copied from the cached city.")(command)
