"""The one place where the mall's SQL differs between engines.

Storage modules are written once, in the SQL both engines read, in SQLite's spelling of the
few things they spell differently.  For PostgreSQL each statement is rewritten here, once per
distinct text (a cache): `?`, `?N` and `:name` placeholders become `$N`; `INSERT OR IGNORE`
becomes `ON CONFLICT DO NOTHING`; `julianday(column)` (of a stamp) becomes the same day
number from the epoch; `group_concat`, `instr`, `char` and `json_each` become
`string_agg`, `strpos`, `chr` and `json_array_elements_text` (whose values are text: a
statement comparing them with numbers says `SELECT CAST(value AS INTEGER) FROM json_each(?)`,
which both engines read, and which PostgreSQL reads through `id_list`, planned for a few ids:
migration 0015).  Migrations' DDL is rewritten the same way (types: SQLite's `INTEGER
PRIMARY KEY` is a row id, PostgreSQL's a bigint identity column, as every `_id` column is a
bigint; `REAL` is a double in SQLite, a float4 in PostgreSQL); a migration step whose SQL cannot be
rewritten (triggers, a table rebuilt) ships an engine file of its own beside it
(`NNNN_name.postgresql.sql`)."""

from __future__ import annotations

import functools
import re

_GROUP_CONCAT = re.compile(r"group_concat\(\s*([^(),]+?)\s*(?:,\s*char\(31\)\s*)?\)",
                           re.IGNORECASE)
_JSON_EACH = re.compile(r"json_each\(\s*(\$\d+)\s*\)", re.IGNORECASE)
_ID_LIST = re.compile(r"SELECT\s+CAST\(\s*value\s+AS\s+INTEGER\s*\)\s+FROM\s+json_each\("
                      r"\s*(\$\d+)\s*\)", re.IGNORECASE)
_JULIANDAY = re.compile(r"\bjulianday\(\s*([\w.]+)\s*\)", re.IGNORECASE)
_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO", re.IGNORECASE)
_RETURNING = re.compile(r"\sRETURNING\s", re.IGNORECASE)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS = re.compile(r"[0-9]+")


_TABLE_INFO = re.compile(r"^\s*PRAGMA\s+table_info\((\w+)\)\s*$", re.IGNORECASE)
_TEMP = re.compile(r"\btemp\.")
_PRAGMA = re.compile(r"^\s*PRAGMA\s", re.IGNORECASE)
# SQLite's catalogue, as far as the mall reads it (which tables exist)
_SQLITE_MASTER = ("(SELECT 'table' AS type, table_name AS name FROM information_schema.tables"
                  " WHERE table_schema = current_schema()) AS sqlite_master")


@functools.lru_cache(maxsize=4096)
def to_postgresql(sql: str) -> tuple[str, tuple[str, ...] | None]:
    """(the statement in PostgreSQL's SQL, the names of its `:name` parameters in `$N`
    order, or None when its parameters are positional).  SQLite's own settings (PRAGMA
    secure_delete, ...) have no counterpart: they read 0 and set nothing."""
    if table := _TABLE_INFO.match(sql):
        return ("SELECT ordinal_position, column_name FROM information_schema.columns WHERE"
                f" table_name = '{table[1]}' AND table_schema = current_schema()"), None
    if _PRAGMA.match(sql):
        return "SELECT 0", None
    text, names = _placeholders(_TEMP.sub("pg_temp.", sql.replace("sqlite_master",
                                                                  _SQLITE_MASTER)))
    text = _GROUP_CONCAT.sub(r"string_agg((\1)::text, chr(31))", text) \
        if "char(31)" in text else _GROUP_CONCAT.sub(r"string_agg((\1)::text, ',')", text)
    text = _ID_LIST.sub(r"SELECT value FROM id_list(\1::json)", text)   # migration 0015
    text = _JSON_EACH.sub(r"json_array_elements_text(\1::json)", text)
    text = re.sub(r"\binstr\(", "strpos(", text, flags=re.IGNORECASE)
    text = _JULIANDAY.sub(r"(extract(epoch from (\1)::timestamptz)::float8 / 86400.0"
                          r" + 2440587.5)", text)
    text = re.sub(r"\bchar\(31\)", "chr(31)", text, flags=re.IGNORECASE)
    if _INSERT_OR_IGNORE.match(text):
        text = _INSERT_OR_IGNORE.sub("INSERT INTO", text, count=1)
        returning = _RETURNING.search(text)
        text = (f"{text[:returning.start()]} ON CONFLICT DO NOTHING{text[returning.start():]}"
                if returning else f"{text} ON CONFLICT DO NOTHING")
    return text, names


def _placeholders(sql: str) -> tuple[str, tuple[str, ...] | None]:
    """`?`, `?N` and `:name` outside quotes and comments, as `$N`."""
    out: list[str] = []
    names: list[str] = []
    plain = 0
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            end = sql.index(ch, i + 1)
            while end + 1 < n and sql[end + 1] == ch:   # a doubled quote inside
                end = sql.index(ch, end + 2)
            out.append(sql[i:end + 1])
            i = end + 1
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end])
            i = end
        elif ch == "?":
            digits = _DIGITS.match(sql, i + 1)
            if digits:
                out.append(f"${digits.group()}")
                i = digits.end()
            else:
                plain += 1
                out.append(f"${plain}")
                i += 1
        elif ch == ":" and (i == 0 or sql[i - 1] != ":") and (name := _NAME.match(sql, i + 1)):
            if name.group() not in names:
                names.append(name.group())
            out.append(f"${names.index(name.group()) + 1}")
            i = name.end()
        else:
            out.append(ch)
            i += 1
    return "".join(out), (tuple(names) if names else None)


_DDL = (
    (re.compile(r"\bid(\s+)INTEGER\s+PRIMARY\s+KEY\b"),
     r"id\1BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    # ids are up to 2^62 in the API: a key column is a bigint (amounts stay integer, whose
    # sums PostgreSQL gives as bigint, not numeric)
    (re.compile(r"\b(\w*_id)(\s+)INTEGER\b"), r"\1\2BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
)


def ddl_to_postgresql(script: str) -> str:
    """A migration script of SQLite DDL as PostgreSQL's; `CHECK (id = 1)` singletons and
    composite keys are left as they are."""
    for pattern, replacement in _DDL:
        script = pattern.sub(replacement, script)
    return ";\n".join(to_postgresql(statement)[0] if statement.strip() else statement
                       for statement in script.split(";\n"))


_SQLITE_ONLY = re.compile(r"^-- engine: sqlite.*?^-- engine: end\n?", re.MULTILINE | re.DOTALL)


def migration_for_postgresql(script: str, own: str | None) -> str:
    """A migration step in PostgreSQL's SQL: its shared script without the blocks marked
    `-- engine: sqlite`, rewritten, then the step's own PostgreSQL file if it has one."""
    shared = ddl_to_postgresql(_SQLITE_ONLY.sub("", script))
    return f"{shared}\n{own}" if own else shared
