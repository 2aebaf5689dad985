"""Which engine a database target names: a file path is SQLite (the embedded default), a
`postgresql://` URL is PostgreSQL.  Everything that opens the mall's database opens it here."""

from __future__ import annotations

from pathlib import Path

from shared.clock import Clock

from .database import Database, open_read_only
from .postgresql import PgDatabase, ReadOnly, is_postgresql

AnyDatabase = Database | PgDatabase


def database_for(target: Path | str, clock: Clock, *, read_connections: int = 2,
                 pool_size: int = 10, pool_timeout: float = 5.0) -> AnyDatabase:
    if is_postgresql(target):
        return PgDatabase(str(target), clock, pool_size, acquire_timeout=pool_timeout)
    return Database(target, clock, read_connections)


def target_of(text: str) -> Path | str:
    """A command line's database: a URL as it is, anything else a file path."""
    return text if is_postgresql(text) else Path(text)


async def read_only(target: Path | str):
    """A connection that cannot write; a missing file or database is an error, not a new
    empty database."""
    if is_postgresql(target):
        return await ReadOnly.open(str(target))
    if not Path(target).is_file():
        raise FileNotFoundError(f"{target}: no such file")
    return await open_read_only(Path(target))
