"""The `--db` of every command that opens the mall's database: a SQLite file path (the
embedded default) or a `postgresql://` URL."""

from __future__ import annotations

from pathlib import Path

import click

from mall.storage.engines import target_of


class DatabaseTarget(click.ParamType):
    name = "FILE|URL"

    def convert(self, value, param, ctx) -> Path | str:
        return value if isinstance(value, Path) else target_of(str(value))


DATABASE = DatabaseTarget()
