"""Connections, transactions and migrations for the embedded SQLite store.

Most of what the mall asks of SQLite costs microseconds in SQLite itself: a primary-key
read, a transaction of a handful of indexed statements (WAL, synchronous=NORMAL: a commit
is a write into the page cache, no fsync).  Handing such work to a thread and back costs far
more than the work: the event loop queues the call, the thread runs it, and every time the
thread needs the GIL back while the loop is busy it waits up to Python's switch interval
(5 ms).  At the late-night crest 130,000 reader hops a minute waited 4.5 ms on average.  So:

- Reads run on the event loop's own connection (`reader()`), straight through.  Reads whose
  cost grows with the city (a search over every product, every store's offers) go to a few
  aiosqlite connections in threads of their own (`scan_reader()`), concurrent with the loop
  thanks to WAL mode.
- A transaction is a body (an async function of the storage calls it makes) run whole
  between BEGIN IMMEDIATE and COMMIT, never suspending.  Requests' transactions run on the
  loop's own write connection, a turn's first at once and the rest of that turn committed
  together (each in a savepoint of its own), when the write lock is free at once; when
  another connection holds it (another process serving the same file, or this process's
  writer thread), and for long bodies (bulk loads, purges, exports: `long=True`), a body
  runs alone in the single writer thread instead, which waits for the lock up to the busy
  timeout.  Either way transactions are serialised: SQLite allows one writer.

Several processes may serve one database (a baseline and a canary in a gray release): every
write is a BEGIN IMMEDIATE transaction, so a check and the write it decides are never split
by another process's write, and no state that decides a write lives only in memory.

The storage functions are written once against `Connection`; the loop's connections and the
writer thread's (`SyncConnection`) and the scan readers (aiosqlite) all provide it."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiosqlite

from shared.clock import Clock

from . import dialect

T = TypeVar("T")

_PRAGMAS = (
    "PRAGMA busy_timeout = 5000",  # first: another process may be opening the file too
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA cache_size = -65536",
)


class DatabaseUnavailable(Exception):
    """The database cannot take this request now (down, restarting, every connection busy):
    nothing was written, and the client may try again shortly (503, Retry-After)."""


class Connection(Protocol):
    """What storage functions may do with a connection."""

    async def execute(self, sql: str, parameters: Iterable[Any] = ...) -> Any: ...

    async def execute_fetchall(self, sql: str, parameters: Iterable[Any] = ...
                               ) -> Iterable[sqlite3.Row]: ...

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> Any: ...

    async def insert_many(self, table: str, columns: Sequence[str],
                          rows: Iterable[tuple]) -> None: ...

    async def lock(self, scope: str, key: int) -> None:
        """Inside a transaction: hold the lock `scope`:`key` until it ends, so transactions
        that take the same lock run one after the other (see `LOCK_SCOPES`)."""


# What a transaction body may lock, each for the rules that read before they write (a
# per-customer limit counted, then a row inserted): under SQLite's single writer every
# transaction runs alone anyway, so these cost nothing there; PostgreSQL runs transactions
# at once and takes each as a transaction-scoped advisory lock (docs/scale.md).
LOCK_SCOPES = {
    "customer": 1,   # a customer's orders, claims and limits: one at a time
    "member": 2,     # a member's level and points, computed from their spending
    "order": 3,      # an order's payment attempts
    "group": 4,      # a group buy's members and completion
}


class SyncConnection:
    """A sqlite3 connection behind awaitable methods that never suspend, so a body written
    with `await` runs straight through, on the loop or in the writer thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, parameters: Iterable[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, _bindable(parameters))

    async def execute_fetchall(self, sql: str, parameters: Iterable[Any] = ()
                               ) -> list[sqlite3.Row]:
        return self._conn.execute(sql, _bindable(parameters)).fetchall()

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]
                          ) -> sqlite3.Cursor:
        return self._conn.executemany(sql, parameters)

    async def insert_many(self, table: str, columns: Sequence[str],
                          rows: Iterable[tuple]) -> None:
        marks = ", ".join("?" * len(columns))
        self._conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                               rows)

    async def lock(self, scope: str, key: int) -> None:
        """Nothing to take: this connection's transactions hold SQLite's only write lock."""
        assert scope in LOCK_SCOPES, scope


def _bindable(parameters: Iterable[Any]) -> Any:
    """Named parameters as the mapping they are, positional ones as a tuple."""
    return parameters if isinstance(parameters, Mapping | tuple) else tuple(parameters)


def _run_to_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that awaits only `SyncConnection` calls, without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return finished.value
    coroutine.close()
    raise RuntimeError("a transaction body may await only its connection")


def migrations(engine: str = "sqlite") -> list[tuple[int, str, str]]:
    """(version, name, sql) of every shipped migration, in order, in the engine's SQL (one
    numbered list; `NNNN_name.postgresql.sql` beside a step is that step's PostgreSQL part,
    mall/storage/dialect.py)."""
    folder = resources.files("mall").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql") and entry.name.count(".") == 1:
            version = int(entry.name.split("_", 1)[0])
            sql = entry.read_text(encoding="utf-8")
            if engine == "postgresql":
                own = folder.joinpath(entry.name.replace(".sql", ".postgresql.sql"))
                sql = dialect.migration_for_postgresql(
                    sql, own.read_text(encoding="utf-8") if own.is_file() else None)
            found.append((version, entry.name, sql))
    return sorted(found)


def _connect(path: Path, busy_timeout_ms: int = 5000) -> sqlite3.Connection:
    """A connection set up as every one of the mall's is; `busy_timeout_ms` is how long a
    statement waits for a lock another connection holds."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    # Turning a new file to WAL takes it whole, and SQLite refuses a second process doing
    # the same at that instant at once, without waiting: try again shortly (the first one's
    # change lasts, so ours soon finds it done).
    for attempt in itertools.count(1):
        try:
            conn.execute(_PRAGMAS[0])
            conn.execute(_PRAGMAS[1])
            break
        except sqlite3.OperationalError:
            if attempt == 50:
                raise
            time.sleep(0.02)
    for pragma in _PRAGMAS[2:]:
        conn.execute(pragma)
    conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    # Checkpoints are run by `Database.checkpoint` (the sweeper, in the writer thread), not
    # by whichever commit happens to cross the WAL threshold and then stalls on the flush.
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    return conn


async def _connect_reader(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    for pragma in _PRAGMAS:
        await conn.execute(pragma)
    return conn


async def open_read_only(path: Path) -> aiosqlite.Connection:
    """A connection that cannot write (for `xingcheng verify`): a missing file is an error,
    not a new empty database."""
    conn = await aiosqlite.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True,
                                   isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


class Database:
    engine = "sqlite"

    def __init__(self, path: Path | str, clock: Clock, read_connections: int = 2) -> None:
        self.path = Path(path)
        self.clock = clock
        self._read_count = max(1, read_connections)
        self._executor: ThreadPoolExecutor | None = None
        self._writer: sqlite3.Connection | None = None
        self._scanners: list[aiosqlite.Connection] = []
        self._loop_reads: sqlite3.Connection | None = None
        self._loop_writes: sqlite3.Connection | None = None
        self._next_scanner = itertools.cycle(range(self._read_count))
        # Transactions this process has committed: a memo of what the database said (the
        # catalogue versions of this loop turn) is stale once this moves.
        self.commits = 0
        # Transactions asked for in this turn of the loop after its first, committed together
        # at its end; whether the turn's first has committed already.
        self._group: list[tuple[Callable[[Connection], Awaitable[Any]], asyncio.Future]] = []
        self._committed_this_turn = False

    async def _in_writer(self, function: Callable[..., T], *args: Any) -> T:
        assert self._executor is not None, "database is not open"
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._writer = await self._in_writer(_connect, self.path)
        await self._in_writer(self._migrate)
        self._scanners = [await _connect_reader(self.path) for _ in range(self._read_count)]
        # On the loop nothing may wait long: a read waits at most 20 ms for a lock (WAL
        # readers hardly ever meet one), and a write transaction not at all, since the
        # writer thread, which may wait, takes it over when the lock is held.
        self._loop_reads = _connect(self.path, busy_timeout_ms=20)
        self._loop_writes = _connect(self.path, busy_timeout_ms=0)

    async def close(self) -> None:
        for conn in (self._loop_reads, self._loop_writes):
            if conn is not None:
                conn.close()
        self._loop_reads = self._loop_writes = None
        for scanner in self._scanners:
            await scanner.close()
        self._scanners = []
        if self._writer is not None:
            await self._in_writer(self._writer.close)
            self._writer = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _migrate(self) -> list[str]:
        """Apply every migration not yet recorded; each in its own transaction.  Its record
        is written first: when another process starting on the same database applied it in
        the meantime, the record's primary key refuses and the whole script rolls back."""
        conn = self._writer
        assert conn is not None
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        applied = []
        # A migration may rebuild a table (SQLite cannot change a CHECK in place): foreign
        # keys are off meanwhile, as SQLite's procedure for it asks, and checked before each
        # commit instead.
        conn.execute("PRAGMA foreign_keys = OFF")
        try:
            for version, name, sql in migrations():
                if version in done:
                    continue
                try:
                    conn.executescript(f"BEGIN IMMEDIATE;\nINSERT INTO schema_migrations VALUES"
                                       f" ({version}, '{name}', '{self.clock.stamp()}');\n{sql}")
                except sqlite3.IntegrityError:
                    conn.execute("ROLLBACK")
                    if conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?",
                                    (version,)).fetchone() is None:
                        raise  # the script's own fault, not another process's head start
                    continue
                broken = conn.execute("PRAGMA foreign_key_check").fetchall()
                if broken:
                    conn.execute("ROLLBACK")
                    raise sqlite3.IntegrityError(f"{name} breaks foreign keys: {broken[:5]}")
                conn.execute("COMMIT")
                applied.append(name)
        finally:
            conn.execute("PRAGMA foreign_keys = ON")
        return applied

    async def transaction(self, body: Callable[[Connection], Awaitable[T]], *,
                          long: bool = False) -> T:
        """Run `body` as one serialised write transaction: committed when it returns,
        rolled back when it raises (and the exception passes on).

        On the loop, the first transaction of a turn of the event loop commits at once, and
        the others asked for in the same turn commit together at its end (group commit):
        each body runs inside a savepoint of one BEGIN IMMEDIATE ... COMMIT, so a body that
        raises is rolled back alone, and every caller hears once all are durable.  A commit
        writes each page it changed into the WAL: an order touches a dozen, and fifty orders
        of one turn share most of them; a lone write, at quiet times, waits for no one.  When
        the write lock is held elsewhere, and always when `long`, a body runs alone in the
        writer thread."""
        if long or self._loop_writes is None:
            return await self._in_writer(self._transact, body)
        loop = asyncio.get_running_loop()
        if not self._group and not self._committed_this_turn:
            self._committed_this_turn = True
            loop.call_soon(self._next_turn)
            outcomes = self._on_loop([body])
            if outcomes is None:   # another writer holds the lock: wait for it apart
                return await self._in_writer(self._transact, body)
            result, error = outcomes[0]
            if error is not None:
                raise error
            return result
        done: asyncio.Future[T] = loop.create_future()
        self._group.append((body, done))
        if len(self._group) == 1:
            loop.call_soon(self._commit_group)
        return await done

    async def statement(self, body: Callable[[Connection], Awaitable[T]]) -> T:
        """A `transaction` whose body runs one statement (PostgreSQL spares it BEGIN and
        COMMIT; here every write takes the write lock anyway)."""
        return await self.transaction(body)

    def _next_turn(self) -> None:
        self._committed_this_turn = False

    def _commit_group(self) -> None:
        group, self._group = self._group, []
        outcomes = self._on_loop([body for body, _ in group])
        if outcomes is None:   # another writer holds the lock: each waits for it apart
            for body, done in group:
                _chain(asyncio.ensure_future(self._in_writer(self._transact, body)), done)
            return
        for (_, done), (result, error) in zip(group, outcomes, strict=True):
            if done.cancelled():   # its caller went away; what it wrote stands
                continue
            if error is None:
                done.set_result(result)
            else:
                done.set_exception(error)

    def _on_loop(self, bodies: list[Callable[[Connection], Awaitable[Any]]]
                 ) -> list[tuple[Any, BaseException | None]] | None:
        """(result, error) of each body, run in savepoints of one transaction on the loop's
        write connection; None when the write lock is held elsewhere (nothing ran)."""
        conn = self._loop_writes
        assert conn is not None, "database is not open"
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            return None
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            for body in bodies:
                conn.execute("SAVEPOINT body")
                try:
                    outcomes.append((_run_to_end(body(SyncConnection(conn))), None))
                except Exception as exc:
                    conn.execute("ROLLBACK TO body")
                    outcomes.append((None, exc))
                conn.execute("RELEASE body")
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:  # never leave the connection inside a failed transaction
                conn.execute("ROLLBACK")
            return [(None, exc) for _ in bodies]
        self.commits += 1
        return outcomes

    def _transact(self, body: Callable[[Connection], Awaitable[T]]) -> T:
        conn = self._writer
        assert conn is not None, "database is not open"
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = _run_to_end(body(SyncConnection(conn)))  # type: ignore[arg-type]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # never leave the writer inside a failed transaction
                conn.execute("ROLLBACK")
            raise
        self.commits += 1
        return result

    async def checkpoint(self, truncate: bool = False) -> None:
        """Copy committed pages from the WAL into the database, without waiting on readers;
        or, with `truncate`, waiting for them (up to the busy timeout) and then emptying the
        WAL file, so no older page image (e.g. of erased personal data) stays in it."""
        assert self._writer is not None, "database is not open"
        await self._in_writer(self._checkpoint, "TRUNCATE" if truncate else "PASSIVE")

    def _checkpoint(self, mode: str) -> None:
        assert self._writer is not None
        # Fetch its result row: an unfinished statement would block the next COMMIT.
        self._writer.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()

    async def after_bulk_load(self) -> None:
        """A row id continues after the largest one by itself."""

    def on_loop(self) -> sqlite3.Connection:
        """The loop's read connection itself, for a synchronous read of a few microseconds
        where even a never-suspending coroutine costs too much (`catalogue_version`)."""
        assert self._loop_reads is not None, "database is not open"
        return self._loop_reads

    def reader(self) -> Connection:
        """The loop's own read connection, for reads bounded by a key or a small index range
        (each statement sees the latest commit)."""
        return SyncConnection(self.on_loop())

    def scan_reader(self) -> aiosqlite.Connection:
        """A connection in a thread of its own, for reads whose cost grows with the city."""
        return self._scanners[next(self._next_scanner)]


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _chain(source: asyncio.Future, target: asyncio.Future) -> None:
    """`target` gets `source`'s outcome when it has one."""
    def copy(finished: asyncio.Future) -> None:
        if target.cancelled():
            return
        if finished.exception() is not None:
            target.set_exception(finished.exception())  # type: ignore[arg-type]
        else:
            target.set_result(finished.result())
    source.add_done_callback(copy)
