"""Compatibility before traffic (`xingcheng compat`): a canary that removes a route, a field
or an enum value, narrows a type, requires a new field, or migrates destructively is refused,
each break named; the same build against itself is compatible."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from orchestration.compatibility import Break, compare_migrations

from .test_cli import XINGCHENG

ROOT = Path(__file__).resolve().parent.parent


def checkout_copy(where: Path) -> Path:
    """A build as a checkout directory: the mall's code and the CLI that serves it."""
    for package in ("mall", "xingcheng", "paysandbox"):
        shutil.copytree(ROOT / package, where / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return where


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{path.name} no longer holds {old!r}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def compat(baseline: Path, canary: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*XINGCHENG, "compat", "--baseline", str(baseline), "--canary",
                           str(canary)], capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # migrates two databases
def test_a_build_against_itself_is_compatible(tmp_path):
    done = compat(ROOT, checkout_copy(tmp_path / "same"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no break" in done.stdout


@pytest.mark.several_seconds
def test_each_breaking_change_is_named(tmp_path):
    canary = checkout_copy(tmp_path / "canary")
    schemas, routes = canary / "mall" / "schemas.py", canary / "mall" / "routes.py"
    edit(schemas, '    description: Annotated[str, StringConstraints(max_length=500)] = ""\n', "")
    edit(schemas, '    lat: Latitude | None = None\n    lng: Longitude | None = None\n',
         '    lat: Latitude\n    lng: Longitude | None = None\n')
    edit(schemas, 'fulfilment: Literal["pickup", "delivery"]', 'fulfilment: Literal["pickup"]')
    edit(schemas, "qty: Annotated[int, Field(gt=0, le=99)]",
         "qty: Annotated[int, Field(gt=0, le=9)]")
    edit(routes, '    Route("GET", f"{V1}/me/addresses/{{address_id}}", '
                 'accounts.get_address, "user",\n          "One of my addresses", tag="me"),\n',
         "")
    (canary / "mall" / "migrations" / "0099_tidy.sql").write_text(
        "ALTER TABLE orders DROP COLUMN pickup_failures;\n"
        "ALTER TABLE stores RENAME COLUMN business_circle TO circle;\n"
        "CREATE TABLE coupons (id INTEGER PRIMARY KEY, code TEXT NOT NULL);\n",
        encoding="utf-8")
    done = compat(ROOT, canary)
    assert done.returncode == 1, done.stdout + done.stderr
    found = done.stdout
    assert "removed route: GET /api/v1/me/addresses/{address_id}" in found, found
    assert "removed field: POST /api/v1/merchant/stores/{store_id}/products body.description" \
        in found
    assert "new required field: POST /api/v1/me/addresses body.lat" in found
    assert "removed enum value: POST /api/v1/orders body.fulfilment (delivery)" in found
    assert "narrowed type: POST /api/v1/orders body.lines[].qty (maximum 99 -> 9)" in found
    assert "dropped or renamed column: orders.pickup_failures" in found
    assert "dropped or renamed column: stores.business_circle" in found
    assert "coupons" not in found   # a new table, NOT NULL columns and all, breaks nothing


def test_migrations_that_fail_or_are_rewritten_are_breaks():
    base = {"0001.sql": "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT);"}
    assert compare_migrations(base, {**base, "0002.sql": "ALTER TABLE t ADD COLUMN b TEXT "
                                     "NOT NULL DEFAULT '';"}) == []
    added = compare_migrations(base, {**base, "0002.sql": "ALTER TABLE t ADD COLUMN b TEXT "
                                      "NOT NULL;"})   # SQLite takes it on an empty table
    assert added == [Break("NOT NULL without default", "t.b")]
    failing = compare_migrations(base, {**base, "0002.sql": "ALTER TABLE nope ADD COLUMN b;"})
    assert [b.kind for b in failing] == ["migration fails"] and "nope" in failing[0].detail
    rebuilt = compare_migrations(base, {**base, "0002.sql": (
        "CREATE TABLE t2 (id INTEGER PRIMARY KEY, a TEXT, b TEXT NOT NULL);"
        "INSERT INTO t2 SELECT id, a, '' FROM t; DROP TABLE t; ALTER TABLE t2 RENAME TO t;")})
    assert rebuilt == [Break("NOT NULL without default", "t.b")]
    assert compare_migrations(base, {"0001.sql": "CREATE TABLE t (id INTEGER PRIMARY KEY);"}
                              )[0] == Break("migration rewritten", "0001.sql")
