"""Where a run keeps its malls' databases: SQLite files in the report folder (the embedded
default), or PostgreSQL databases on a server (`--engine postgresql`), each side's made for
the run from the cached city as a template and dropped when the run is over (a gray
release's builds share one, as they share a file)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from rich.console import Console

from loadtests.scenario import Scenario
from mall.storage import postgres_databases
from mall.storage.database import migrations
from mall.storage.postgres_databases import LOCAL_SERVER
from mall.storage.postgresql import BULK_LOAD_VERSION
from simulator.city import build_city
from simulator.loader import load

ENGINES = ("sqlite", "postgresql")
CACHE = Path(os.environ.get("XINGCHENG_CACHE", ".xingcheng-cache"))
DROP_PATIENCE_S = 20.0   # a cluster restart takes a few seconds here


@dataclass
class Databases:
    engine: str = "sqlite"
    server: str = LOCAL_SERVER
    made: dict[str, Path | str] = field(default_factory=dict)   # side or "shared" -> database

    def city(self, scenario: Scenario, console: Console) -> Path | str:
        """The scenario's city, pristine, generated once per preset and seed (and, on
        PostgreSQL, schema): a file, or a database kept on the server as a template."""
        spec = scenario.spec.city
        if self.engine == "postgresql":
            return asyncio.run(self._postgresql_city(scenario, console))
        cached = CACHE / "cities" / f"{spec.preset}-{spec.seed}.db"
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_suffix(".partial")
            partial.unlink(missing_ok=True)
            with console.status(f"generating the {spec.preset} city (seed {spec.seed})"):
                asyncio.run(load(build_city(scenario.preset, spec.seed), partial))
            partial.rename(cached)
        return cached

    async def _postgresql_city(self, scenario: Scenario, console: Console) -> str:
        spec = scenario.spec.city
        made = "".join(sql for _, _, sql in migrations("postgresql")) + str(BULK_LOAD_VERSION)
        schema = hashlib.sha1(made.encode()).hexdigest()[:8]
        name = f"xc_city_{spec.preset}_{spec.seed}_{schema}"
        if await postgres_databases.exists(f"{self.server.rstrip('/')}/{name}"):
            return f"{self.server.rstrip('/')}/{name}"
        loading = await postgres_databases.create(self.server, f"loading_{spec.preset}")
        try:
            with console.status(f"generating the {spec.preset} city (seed {spec.seed}) on "
                                "PostgreSQL"):
                await load(build_city(scenario.preset, spec.seed), loading)
            return await postgres_databases.rename(loading, name)
        except BaseException:
            await postgres_databases.drop(loading)
            raise

    def for_side(self, scenario: Scenario, console: Console, report_dir: Path, side: str,
                 shared: bool) -> tuple[Path | str, bool]:
        """(a side's database, whether it was made just now from the city): its own copy of
        the city, or the one every side serves."""
        key = "shared" if shared else side
        if key in self.made:
            return self.made[key], False
        city = self.city(scenario, console)
        if self.engine == "postgresql":
            target: Path | str = asyncio.run(postgres_databases.create(
                self.server, f"run_{key}", template=str(city)))
            fresh = True
        else:
            target = report_dir / ("mall.db" if shared else f"mall-{side}.db")
            fresh = not target.exists()
            if fresh:
                shutil.copyfile(city, target)
        self.made[key] = target
        return target, fresh

    def of(self, side: str) -> Path | str | None:
        """The database a side served (None for a mall started elsewhere)."""
        return self.made.get(side, self.made.get("shared"))

    def drop(self, console: Console | None = None, patience: float = DROP_PATIENCE_S) -> list[str]:
        """The run's PostgreSQL databases go (on SQLite the files stay with the report); the
        ones that could not, by URL.  A server restarting (a rehearsal's restart, an
        operator's) is waited for up to `patience` seconds; one still away then leaves its
        databases behind, named with how to drop them, and the run's verdict stands."""
        left: list[str] = []
        if self.engine == "postgresql":
            for target in self.made.values():
                error = asyncio.run(_drop_patiently(str(target), patience))
                if error is not None:
                    left.append(str(target))
                    if console is not None:
                        name = postgres_databases.split(str(target))[1]
                        console.print(f"[yellow]could not drop {name}[/yellow] ({error}); "
                                      f"drop it with: psql -c 'DROP DATABASE {name}'")
        self.made.clear()
        return left


async def _drop_patiently(url: str, patience: float) -> str | None:
    """Drop, trying again while the server cannot be reached; None once dropped, else what
    the last try met."""
    deadline = asyncio.get_running_loop().time() + patience
    while True:
        try:
            await postgres_databases.drop(url)
            return None
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if asyncio.get_running_loop().time() >= deadline:
                return f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.5)
