"""docs/data-dictionary.md names exactly the tables and columns a freshly migrated database
has: nothing in the schema goes undocumented, and nothing documented is gone."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from pathlib import Path

from mall.storage import Database
from shared.clock import Clock

DICTIONARY = Path(__file__).resolve().parent.parent / "docs" / "data-dictionary.md"

_HEADING = re.compile(r"^##\s+(.+?)\s*$")
_COLUMN_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|")


def documented(text: str) -> dict[str, list[str]]:
    """{table: [column, ...]} from `## table` headings and the rows below each one whose
    first cell is a backticked name."""
    tables: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        heading = _HEADING.match(line)
        if heading:
            current = heading.group(1).strip("`")
            assert current not in tables, f"table {current} has two headings in {DICTIONARY}"
            tables[current] = []
            continue
        row = _COLUMN_ROW.match(line.strip())
        if row and current is not None:
            tables[current].append(row.group(1))
    return tables


FTS5_SHADOWS = ("_data", "_idx", "_content", "_docsize", "_config")


def schema(path: Path) -> dict[str, list[str]]:
    """{table: [column, ...]} of every non-internal table in the SQLite file (an FTS5 table's
    shadow tables are its own storage, as an index's b-tree is)."""
    with closing(sqlite3.connect(path)) as conn:
        names = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")]
        virtual = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%'")]
        names = [name for name in names if not any(
            name == f"{table}{suffix}" for table in virtual for suffix in FTS5_SHADOWS)]
        tables = {name: [col[1] for col in conn.execute(f'PRAGMA table_info("{name}")')]
                  for name in names}
    return tables


async def test_data_dictionary_matches_the_migrated_schema(tmp_path):
    db = Database(tmp_path / "x.db", Clock())
    await db.open()
    await db.close()
    actual = schema(tmp_path / "x.db")
    docs = documented(DICTIONARY.read_text(encoding="utf-8"))
    assert "schema_migrations" in actual and "orders" in actual, "migrations did not run"

    problems = []
    for table in sorted(set(actual) - set(docs)):
        problems.append(f"table {table} is not documented (no '## {table}' heading)")
    for table in sorted(set(docs) - set(actual)):
        problems.append(f"table {table} is documented but not in the schema")
    for table in sorted(set(actual) & set(docs)):
        columns, described = actual[table], docs[table]
        problems += [f"column {table}.{column} is not documented under '## {table}'"
                     for column in columns if column not in described]
        problems += [f"column {table}.{column} is documented but not in the schema"
                     for column in described if column not in columns]
        problems += [f"column {table}.{column} is documented more than once"
                     for column in sorted(set(described)) if described.count(column) > 1]
    assert not problems, f"{DICTIONARY} is out of date:\n" + "\n".join(problems)
