"""`xingcheng city …`: generate a city into a mall database, and describe one."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mall.storage import stores
from mall.storage.engines import database_for
from shared.clock import Clock
from xingcheng.database_option import DATABASE

from . import tables
from .city import build_city
from .export import export
from .loader import CityExists, load, read_manifest

console = Console(stderr=True)
DB = click.option("--db", "db_path", type=DATABASE, default="city.db", show_default=True,
                  help="The mall's database: a SQLite file, or a postgresql:// URL.")


@click.group()
def city() -> None:
    """The simulated Changsha: generate it into the mall, describe it."""


@city.command()
@click.option("--preset", type=click.Choice(sorted(tables.presets())), default="small",
              show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@DB
@click.option("--stores", type=click.IntRange(1), help="Override the preset's store count.")
@click.option("--customers", type=click.IntRange(1), help="Override the customer count.")
@click.option("--skus-per-store", type=click.IntRange(1), help="Override SKUs per store.")
@click.option("--export", "export_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write the city as CSV/JSON into this folder.")
def generate(preset: str, seed: int, db_path: Path, stores: int | None, customers: int | None,
             skus_per_store: int | None, export_dir: Path | None) -> None:
    """Build a city from a seed and bulk-load it into the mall's database."""
    started = time.perf_counter()
    with console.status(f"building the {preset} city from seed {seed}"):
        built = build_city(tables.presets()[preset], seed, stores=stores, customers=customers,
                           skus_per_store=skus_per_store)
    console.print(f"built in {time.perf_counter() - started:.1f}s")
    columns = (TextColumn("{task.description:<15}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bars: dict[str, int] = {}

        def on_progress(table: str, done: int, total: int) -> None:
            if table not in bars:
                bars[table] = progress.add_task(table, total=total)
            progress.update(bars[table], completed=done)

        if isinstance(db_path, Path):
            db_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            counts = asyncio.run(load(built, db_path, on_progress))
        except CityExists as exc:
            raise click.ClickException(f"{exc}; use a new --db file") from exc
    if export_dir is not None:
        export(built, export_dir)
        console.print(f"exported to {export_dir}")
    console.print(f"loaded {json.dumps(counts)} into {db_path} "
                  f"in {time.perf_counter() - started:.1f}s")


@city.command()
@DB
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the pictures go (default: beside the database).")
def describe(db_path: Path, out_dir: Path | None) -> None:
    """Counts by district and persona, and pictures of the day's traffic and the stores."""
    if not db_path.exists():
        raise click.ClickException(f"{db_path} does not exist")
    manifest = asyncio.run(read_manifest(db_path))
    if manifest is None:
        raise click.ClickException(f"{db_path} holds no generated city")
    by_district, locations = asyncio.run(_store_facts(db_path))
    counts = manifest["counts"]
    table = Table(title=f"{manifest['preset']} city, seed {manifest['seed']}")
    table.add_column("district")
    table.add_column("stores", justify="right")
    table.add_column("customers", justify="right")
    for name, n in by_district.items():
        table.add_row(name, str(n), str(counts["customers_by_district"].get(name, 0)))
    out = Console()
    out.print(table)
    personas = Table(title="customers by persona")
    personas.add_column("persona")
    personas.add_column("customers", justify="right")
    personas.add_column("share", justify="right")
    for key, n in counts["customers_by_persona"].items():
        personas.add_row(key, str(n), f"{n / counts['customers']:.1%}")
    out.print(personas)
    folder = out_dir or db_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    stem = db_path.stem
    # Here, not at the top: matplotlib is half a second of every `xingcheng` start.
    from .describe import store_map_picture, traffic_picture
    curve = traffic_picture(manifest["sizes"]["daily_orders"], folder / f"{stem}-traffic.png")
    where = store_map_picture(locations, folder / f"{stem}-stores.png")
    out.print(f"pictures: {curve} {where}")


async def _store_facts(db_path: Path) -> tuple[dict[str, int], list[tuple[float, float, str]]]:
    db = database_for(db_path, Clock(), read_connections=1)
    await db.open()
    try:
        conn = db.reader()
        rows = await stores.stores_in_district(conn, None)
        return (await stores.count_by_district(conn),
                [(row["lat"], row["lng"], row["district"]) for row in rows])
    finally:
        await db.close()
