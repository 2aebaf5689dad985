"""Compatibility before traffic: may the canary serve the same clients and the same database
as the baseline?  Its API (the OpenAPI document each build serves) must keep every route,
every field clients send or read, every enum value and every type's range, and add no new
required request field; its migrations must not drop or rename a column or table, nor add a
NOT NULL column without a default, nor rewrite a migration the baseline already applied.
Each break names what broke; any break fails the rollout before it starts.

Each build's document is made by its own code (a subprocess on its checkout, or fetched from
its URL); each build's schema by applying its own migration files to an empty SQLite
database, so SQLite itself reads the DDL, and, for a build that runs on PostgreSQL too, its
migrations as its own code gives them for PostgreSQL to a scratch database on the server
(`XINGCHENG_POSTGRES`, the local one by default), so PostgreSQL reads them.  A change only to a
migration's comments is no rewrite."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import sys
import urllib.request
from dataclasses import dataclass

import asyncpg

from mall.storage import postgres_databases

from .builds import Build, BuildError

_POSTGRESQL_MIGRATIONS = (
    "import json; from mall.storage.database import migrations;"
    " print(json.dumps([[name, sql] for _, name, sql in migrations('postgresql')]))")
_DOCUMENT = ("import json; from mall import openapi, __version__; from mall.routes import ROUTES;"
             " print(json.dumps(openapi.build(ROUTES, __version__)))")
_NARROWING = {"maxLength": min, "maxItems": min, "maximum": min, "exclusiveMaximum": min,
              "minLength": max, "minItems": max, "minimum": max, "exclusiveMinimum": max}


@dataclass(frozen=True)
class Break:
    kind: str      # removed route | removed field | new required field | removed enum value |
    # narrowed type | dropped table | dropped or renamed column | NOT NULL without default |
    # migration rewritten | migration fails
    where: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.where}" + (f" ({self.detail})" if self.detail else "")


def document_of(build: Build) -> dict:
    if build.kind == "url":
        with urllib.request.urlopen(f"{build.url}/api/v1/openapi.json", timeout=10) as resp:
            return json.loads(resp.read())
    assert build.path is not None
    done = subprocess.run([sys.executable, "-c", _DOCUMENT], cwd=build.path,
                          env={"PYTHONPATH": str(build.path)}, capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0:
        raise BuildError(f"{build.spec}: its OpenAPI document could not be made: "
                         f"{done.stderr.strip()[-300:]}")
    return json.loads(done.stdout)


def migrations_of(build: Build) -> dict[str, str]:
    if build.path is None:
        raise BuildError(f"{build.spec}: a running mall's migrations cannot be read")
    return {p.name: p.read_text(encoding="utf-8")
            for p in sorted((build.path / "mall" / "migrations").glob("*.sql"))}


def postgresql_migrations_of(build: Build) -> dict[str, str] | None:
    """The build's migrations in PostgreSQL's SQL, as its own code gives them; None for a
    build from before PostgreSQL."""
    assert build.path is not None
    done = subprocess.run([sys.executable, "-c", _POSTGRESQL_MIGRATIONS], cwd=build.path,
                          env={"PYTHONPATH": str(build.path)}, capture_output=True, text=True,
                          timeout=60)
    return dict(json.loads(done.stdout)) if done.returncode == 0 else None


def check(baseline: Build, canary: Build) -> list[Break]:
    breaks = compare_documents(document_of(baseline), document_of(canary))
    if baseline.path is not None and canary.path is not None:
        breaks += compare_migrations(migrations_of(baseline), migrations_of(canary))
        new = postgresql_migrations_of(canary)
        if new is not None:
            on_postgresql = compare_postgresql_migrations(
                postgresql_migrations_of(baseline) or {}, new, postgres_databases.LOCAL_SERVER)
            breaks += [found for found in on_postgresql if found not in breaks]
    return breaks


# --- the API ---------------------------------------------------------------------------------

def compare_documents(old: dict, new: dict) -> list[Break]:
    breaks: list[Break] = []
    for path, methods in old.get("paths", {}).items():
        for method, operation in methods.items():
            where = f"{method.upper()} {path}"
            now = new.get("paths", {}).get(path, {}).get(method)
            if now is None:
                breaks.append(Break("removed route", where))
                continue
            breaks += _parameters(where, operation, now, old, new)
            before, after = _body(operation), _body(now)
            if before is not None or after is not None:
                breaks += _schema(f"{where} body", before or {}, after or {}, old, new,
                                  sent=True)
            for status, response in operation.get("responses", {}).items():
                read = _content(response)
                if read is not None and status.startswith("2"):
                    breaks += _schema(f"{where} {status} response", read,
                                      _content(now.get("responses", {}).get(status, {})) or {},
                                      old, new, sent=False)
    return breaks


def _content(holder: dict) -> dict | None:
    return holder.get("content", {}).get("application/json", {}).get("schema")


def _body(operation: dict) -> dict | None:
    return _content(operation.get("requestBody", {}))


def _resolve(schema: dict, document: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document.get("components", {}).get("schemas", {}).get(name, {})
    return schema


def _parameters(where: str, old_op: dict, new_op: dict, old: dict, new: dict) -> list[Break]:
    breaks = []
    before = {(p["in"], p["name"]): p for p in old_op.get("parameters", [])}
    after = {(p["in"], p["name"]): p for p in new_op.get("parameters", [])}
    for key, param in before.items():
        if key not in after:
            breaks.append(Break("removed field", f"{where} {key[0]} parameter {key[1]}"))
        else:
            breaks += _schema(f"{where} {key[0]} parameter {key[1]}", param.get("schema", {}),
                              after[key].get("schema", {}), old, new, sent=True)
    for key, param in after.items():
        if param.get("required") and not before.get(key, {}).get("required"):
            breaks.append(Break("new required field", f"{where} {key[0]} parameter {key[1]}"))
    return breaks


def _schema(where: str, old_schema: dict, new_schema: dict, old: dict, new: dict,
            sent: bool) -> list[Break]:
    """What a client relying on `old_schema` loses in `new_schema`.  For what clients send:
    fields, enum values and ranges they may use, and no new required field.  For what they
    read: fields they read."""
    before, after = _resolve(old_schema, old), _resolve(new_schema, new)
    breaks: list[Break] = []
    old_props, new_props = before.get("properties", {}), after.get("properties", {})
    for name, prop in old_props.items():
        if name not in new_props:
            breaks.append(Break("removed field", f"{where}.{name}"))
        else:
            breaks += _schema(f"{where}.{name}", prop, new_props[name], old, new, sent)
    if not sent:
        return breaks
    for name in set(after.get("required", [])) - set(before.get("required", [])):
        breaks.append(Break("new required field", f"{where}.{name}"))
    if "items" in before and "items" in after:
        breaks += _schema(f"{where}[]", before["items"], after["items"], old, new, sent)
    lost = _enum(before, old) - _enum(after, new) if _enum(after, new) else set()
    if lost:
        breaks.append(Break("removed enum value", where, ", ".join(sorted(map(str, lost)))))
    if _types(before, old) - _types(after, new) and _types(after, new):
        breaks.append(Break("narrowed type", where, f"{sorted(_types(before, old))} -> "
                                                    f"{sorted(_types(after, new))}"))
    for key, tighter in _NARROWING.items():
        if key in after and (key not in before or tighter(before[key], after[key]) != before[key]):
            breaks.append(Break("narrowed type", where, f"{key} {before.get(key, '-')} -> "
                                                        f"{after[key]}"))
    if after.get("pattern") and after.get("pattern") != before.get("pattern"):
        breaks.append(Break("narrowed type", where, f"pattern {before.get('pattern', '-')} -> "
                                                    f"{after['pattern']}"))
    return breaks


def _variants(schema: dict, document: dict) -> list[dict]:
    schema = _resolve(schema, document)
    options = schema.get("anyOf") or schema.get("oneOf")
    return [_resolve(s, document) for s in options] if options else [schema]


def _enum(schema: dict, document: dict) -> set:
    values: set = set()
    for variant in _variants(schema, document):
        values |= set(variant.get("enum", ()))
        if "const" in variant:
            values.add(variant["const"])
    return values


def _types(schema: dict, document: dict) -> set[str]:
    found: set[str] = set()
    for variant in _variants(schema, document):
        kind = variant.get("type")
        found |= set(kind) if isinstance(kind, list) else {kind} if kind else set()
    if "number" in found:
        found.add("integer")
    return found


# --- the database ----------------------------------------------------------------------------

def compare_migrations(old: dict[str, str], new: dict[str, str]) -> list[Break]:
    """Migration files (both engines') rewritten or removed, and the SQLite schema's breaks."""
    breaks = [Break("migration rewritten", name) for name, sql in old.items()
              if name in new and _statements(new[name]) != _statements(sql)]
    breaks += [Break("migration rewritten", name, "removed") for name in old if name not in new]
    before, _ = _schema_after(_shared(old))   # the baseline's ran in production already
    after, failure = _schema_after(_shared(new))
    if failure:
        return [*breaks, Break("migration fails", failure[0], failure[1])]
    return breaks + _schema_breaks(before, after)


def compare_postgresql_migrations(old: dict[str, str], new: dict[str, str],
                                  server: str) -> list[Break]:
    """The PostgreSQL schema's breaks (each build's migrations as its code gives them)."""
    before, _ = asyncio.run(_postgresql_schema_after(old, server)) if old else ({}, None)
    after, failure = asyncio.run(_postgresql_schema_after(new, server))
    if failure:
        return [Break("migration fails", failure[0], f"postgresql: {failure[1]}")]
    return _schema_breaks(before, after)


def _statements(sql: str) -> str:
    return " ".join(re.sub(r"--[^\n]*", "", sql).split())


def _shared(migrations: dict[str, str]) -> dict[str, str]:
    """The numbered steps SQLite runs (not a step's `.postgresql.sql` part)."""
    return {name: sql for name, sql in migrations.items() if name.count(".") == 1}


def _schema_breaks(before: dict, after: dict) -> list[Break]:
    breaks = []
    for table, columns in before.items():
        if table not in after:
            breaks.append(Break("dropped table", table))
            continue
        for column in columns:
            if column not in after[table]:
                breaks.append(Break("dropped or renamed column", f"{table}.{column}"))
        for column, (notnull, default) in after[table].items():
            if column not in columns and notnull and default is None:
                breaks.append(Break("NOT NULL without default", f"{table}.{column}"))
    return breaks


async def _postgresql_schema_after(migrations: dict[str, str], server: str
                                   ) -> tuple[dict, tuple[str, str] | None]:
    """As `_schema_after`, on a scratch database on the server, dropped after."""
    url = await postgres_databases.create(server, "compat")
    try:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            for name, sql in migrations.items():
                try:
                    await conn.execute(sql)
                except asyncpg.PostgresError as exc:
                    return {}, (name, str(exc))
            schema: dict[str, dict[str, tuple[bool, object]]] = {}
            for row in await conn.fetch(
                    "SELECT table_name, column_name, is_nullable, column_default FROM"
                    " information_schema.columns WHERE table_schema = current_schema()"):
                schema.setdefault(row[0], {})[row[1]] = (row[2] == "NO", row[3])
            return schema, None
        finally:
            await conn.close()
    finally:
        await postgres_databases.drop(url)


def _schema_after(migrations: dict[str, str]
                  ) -> tuple[dict[str, dict[str, tuple[bool, object]]], tuple[str, str] | None]:
    """Tables and their columns (NOT NULL, default) after applying the migrations in order."""
    conn = sqlite3.connect(":memory:")
    try:
        for name, sql in migrations.items():
            try:
                conn.executescript(sql)
            except sqlite3.Error as exc:
                return {}, (name, str(exc))
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {table: {row[1]: (bool(row[3]), row[4]) for row in
                        conn.execute(f"PRAGMA table_info({json.dumps(table)})")}
                for table in tables}, None
    finally:
        conn.close()
