"""Databases made and dropped on a PostgreSQL server: one per run side, per test, per cached
city (copied from it as a template: a city of a million customers is copied in seconds
rather than loaded again)."""

from __future__ import annotations

import os
import re
import secrets

import asyncpg

_NAME = re.compile(r"[a-z0-9_]{1,63}")
# The server runs, tests and compat make their databases on: this machine's, unless told.
LOCAL_SERVER = os.environ.get("XINGCHENG_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def split(url: str) -> tuple[str, str]:
    """(the server's URL, the database's name) of a database URL."""
    server, _, name = url.rstrip("/").rpartition("/")
    return server, name.split("?", 1)[0]


async def _on_server(server: str, statement: str) -> None:
    conn = await asyncpg.connect(f"{server}/postgres", timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create(server: str, label: str, template: str | None = None) -> str:
    """A new empty database (or a copy of `template`'s URL) named after `label`; its URL."""
    name = f"xc_{re.sub(r'[^a-z0-9_]', '_', label.lower())[:40]}_{secrets.token_hex(4)}"
    copy = f" TEMPLATE {_checked(split(template)[1])}" if template else ""
    await _on_server(server, f"CREATE DATABASE {name}{copy}")
    return f"{server.rstrip('/')}/{name}"


async def rename(url: str, name: str) -> str:
    """The database under a new name (a load finished under a temporary one); its URL."""
    server, old = split(url)
    await _on_server(server, f"ALTER DATABASE {_checked(old)} RENAME TO {_checked(name)}")
    return f"{server}/{name}"


async def drop(url: str) -> None:
    server, name = split(url)
    await _on_server(server, f"DROP DATABASE IF EXISTS {_checked(name)} WITH (FORCE)")


async def exists(url: str) -> bool:
    server, name = split(url)
    conn = await asyncpg.connect(f"{server}/postgres", timeout=10)
    try:
        return await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name) == 1
    finally:
        await conn.close()


def _checked(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a database name this tool makes: {name!r}")
    return name
