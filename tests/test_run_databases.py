"""A run's PostgreSQL databases are dropped when it ends, and a server that cannot be reached
then (restarting, gone) leaves them named with how to drop them, never a traceback."""

from __future__ import annotations

import asyncio
import io

import pytest
from rich.console import Console

from mall.storage import postgres_databases
from mall.storage.postgres_databases import LOCAL_SERVER
from orchestration import builds, rollout, run
from orchestration.databases import Databases


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


@pytest.mark.several_seconds
@pytest.mark.parametrize("command", ["run", "rollout"])
def test_a_run_broken_by_a_bug_still_drops_its_database(tmp_path, monkeypatch, command):
    """A harness error and Ctrl-C end a run with their exit codes; anything else is a bug,
    which goes through with its traceback, but not before the run's processes are stopped
    and its databases dropped (one was left on the server when staging a city's campaigns
    failed)."""
    staged: list[str] = []

    def broken(db, *_args):
        staged.append(db)
        raise RuntimeError("a bug while staging the campaigns")

    monkeypatch.setattr(run.campaigns, "stage", broken)
    console, databases = Console(file=io.StringIO()), Databases(engine="postgresql")
    with pytest.raises(RuntimeError, match="a bug while staging"):
        if command == "run":
            run.run(run.RunSettings("smoke", reports=tmp_path, databases=databases), console)
        else:
            rollout.rollout("smoke", str(builds.REPO), str(builds.REPO), "share", [50],
                            tmp_path, console, databases=databases)
    assert staged and staged[0].startswith(LOCAL_SERVER)
    assert not asyncio.run(postgres_databases.exists(staged[0]))
