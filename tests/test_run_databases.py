"""A run's PostgreSQL databases are dropped when it ends, and a server that cannot be reached
then (restarting, gone) leaves them named with how to drop them, never a traceback."""

from __future__ import annotations

import asyncio
import io

from rich.console import Console

from loadtests.databases import Databases
from mall.storage import postgres_databases
from mall.storage.postgres_databases import LOCAL_SERVER


def test_a_run_database_is_dropped_from_the_server():
    url = asyncio.run(postgres_databases.create(LOCAL_SERVER, "run_drop_probe"))
    databases = Databases(engine="postgresql", made={"baseline": url})
    assert asyncio.run(postgres_databases.exists(url))
    assert databases.drop(Console(file=io.StringIO()), patience=5) == []
    assert not asyncio.run(postgres_databases.exists(url))
    assert databases.made == {}


def test_a_server_away_at_the_end_leaves_the_database_named_not_a_traceback():
    away = "postgresql://postgres@127.0.0.1:9/xc_run_baseline_probe"   # nothing listens on 9
    out = io.StringIO()
    databases = Databases(engine="postgresql", made={"baseline": away})
    assert databases.drop(Console(file=out, width=200), patience=1.0) == [away]
    said = out.getvalue()
    assert "could not drop xc_run_baseline_probe" in said
    assert "DROP DATABASE xc_run_baseline_probe" in said
    assert databases.made == {}
