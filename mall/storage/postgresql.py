"""The same storage functions over PostgreSQL, through an asyncpg pool.

Where SQLite serialises every write behind one lock, PostgreSQL runs transactions at the same
time, from every worker process.  Transactions here run at READ COMMITTED, as production
shops on PostgreSQL do, and each business rule is held by the database itself
(docs/scale.md has the table):

- a check and the write it decides are one conditional statement wherever they can be
  (`UPDATE inventory ... WHERE on_hand - reserved >= ?`): PostgreSQL re-checks the
  condition on the newest row once a concurrent writer of that row commits;
- a rule that must read before it writes (a per-customer limit counted, then a claim
  inserted) takes a lock of its scope first (`Connection.lock`, a transaction-scoped advisory
  lock), so the transactions of one customer, member, order or group run one at a time, and
  each statement after the lock sees what the previous holder committed;
- a unique index refuses a second row (one idempotency key, one refund per order): the
  transaction that meets a row committed meanwhile is run again and then sees it.

SERIALIZABLE was the first design; at the late-night crest its predicate locks on the hot
index pages of new orders and payments refused 220 transactions a second that conflicted
only on paper, and their retries took the mall's core.  A deadlock (two transactions
locking the same rows in opposite orders) is run again too, bounded, with jittered backoff.
Reads outside transactions see the latest commit, one statement at a time from the pool.

Nothing waits without bound: taking a pooled connection waits `acquire_timeout` seconds, a
connection attempt `connect_timeout`; a database that is down, restarting or exhausted
raises `DatabaseUnavailable`, which the front door answers with 503 and Retry-After.

Catalogue versions (migration 0007) are pushed, not polled: the triggers NOTIFY each new
version, a listening connection keeps them in memory, and a transaction of this process
learns the versions it made itself before it returns, so a cached page needs no read of its
own: only a query on the listening connection, shared by every lookup waiting at the time,
that makes sure what other processes committed has arrived (`CatalogueVersions`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg

from shared.clock import Clock

from .database import LOCK_SCOPES, DatabaseUnavailable, migrations
from .dialect import to_postgresql

T = TypeVar("T")
log = logging.getLogger("mall.postgresql")

TRANSACTION_RETRIES = 12
_RETRY = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError,
          asyncpg.UniqueViolationError)
# What a database that is away looks like from here: refused or dropped connections, a
# server shutting down or starting, a pool with nothing free within the timeout.
_AWAY = (OSError, asyncio.TimeoutError, asyncpg.InterfaceError,
         asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
         asyncpg.OperatorInterventionError)
# What a bulk-loaded database holds beyond its migrations (statistics, sequences): bumped when
# `after_bulk_load` changes, so databases kept as templates are loaded again.
BULK_LOAD_VERSION = 2
# jit off: the planner JIT-compiles any statement it guesses costly, which for the mall's
# short ones (the stock audit, say: 25 ms of work) took 325 ms of compiling on every call.
SESSION_SETTINGS = {"application_name": "xingcheng", "jit": "off"}
_MIGRATION_LOCK = 0x78696E67   # "xing": one process at a time migrates
_RETURNS_ROWS = ("SELECT", "WITH", "VALUES")


def is_postgresql(target: object) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


class PgCursor:
    """What a storage function reads of an executed statement: its rows and how many
    rows it changed."""

    def __init__(self, rows: list, rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list:
        return self._rows

    def __iter__(self):
        return iter(self._rows)


class PgConnection:
    """`Connection` over one asyncpg connection (inside a transaction) or over the pool
    (each statement on whichever connection is free)."""

    def __init__(self, target: asyncpg.Connection | asyncpg.Pool) -> None:
        self._target = target

    async def execute(self, sql: str, parameters: Iterable[Any] = ()) -> PgCursor:
        text, names = to_postgresql(sql)
        args = _arguments(parameters, names)
        with _away():
            if text.lstrip().upper().startswith(_RETURNS_ROWS) or " RETURNING " in text.upper():
                rows = await self._target.fetch(text, *args)
                return PgCursor(rows, len(rows))
            status = await self._target.execute(text, *args)
        count = status.rsplit(" ", 1)[-1]
        return PgCursor([], int(count) if count.isdigit() else -1)

    async def execute_fetchall(self, sql: str, parameters: Iterable[Any] = ()) -> list:
        text, names = to_postgresql(sql)
        with _away():
            return await self._target.fetch(text, *_arguments(parameters, names))

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> None:
        text, names = to_postgresql(sql)
        rows = [_arguments(row, names) for row in parameters]
        if rows:
            with _away():
                await self._target.executemany(text, rows)

    async def insert_many(self, table: str, columns: Sequence[str],
                          rows: Iterable[tuple]) -> None:
        """Rows in by COPY: the bulk load of a city of a million customers."""
        with _away():
            if isinstance(self._target, asyncpg.Pool):
                async with self._target.acquire() as conn:
                    await conn.copy_records_to_table(table, records=rows, columns=columns)
            else:
                await self._target.copy_records_to_table(table, records=rows, columns=columns)


class PgTransaction(PgConnection):
    """`Connection` inside one transaction on one pooled connection.  BEGIN goes out with
    the body's first request, in the same round trip when that is a lock (a body that must
    read before it writes locks first), so a locking transaction costs no round trip more
    than one that does not; a body that asks nothing opens no transaction at all."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        super().__init__(conn)
        self._begun = False
        self._bulk = False
        # 'channel store:version' of the catalogue changes made (channel: catalogue, or
        # catalogue_content for a change of what pages show apart from stock)
        self.announced: list[str] = []

    async def _begin(self, with_statement: str = "") -> None:
        if not self._begun:
            self._begun = True   # first: a BEGIN that failed half-way is still rolled back
            with _away():
                await self._target.execute(f"BEGIN{with_statement}")

    async def _run(self, statement: str) -> None:
        """A statement without parameters, inside the transaction: in the BEGIN's own
        round trip when it comes first."""
        if self._begun:
            with _away():
                await self._target.execute(statement)
        else:
            await self._begin(f"; {statement}")

    async def execute(self, sql: str, parameters: Iterable[Any] = ()) -> PgCursor:
        await self._begin()
        return await super().execute(sql, parameters)

    async def execute_fetchall(self, sql: str, parameters: Iterable[Any] = ()) -> list:
        await self._begin()
        return await super().execute_fetchall(sql, parameters)

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> None:
        await self._begin()
        await super().executemany(sql, parameters)

    async def insert_many(self, table: str, columns: Sequence[str],
                          rows: Iterable[tuple]) -> None:
        # COPY is how a city is loaded into an empty database, which no mall has cached
        # anything of: the catalogue triggers stand aside for it (migration 0014), instead
        # of announcing a version for each of a million rows.
        if not self._bulk:
            self._bulk = True
            await self._run("SET LOCAL mall.bulk_load = on")
        await super().insert_many(table, columns, rows)

    async def lock(self, scope: str, key: int) -> None:
        # Two int4 keys: the scope's number and the key folded into 31 bits (ids beyond
        # that would only share a lock with another id, never lose one).  Integers only,
        # so the statement may be sent as text with the BEGIN before it.
        await self._run(f"SELECT pg_advisory_xact_lock({LOCK_SCOPES[scope]}, {int(key) % 2**31})")

    def heard(self, _conn: object, message: asyncpg.PostgresLogMessage) -> None:
        """A NOTICE from migration 0014's or 0018's trigger: 'catalogue store:version' or
        'catalogue_content store:version'."""
        if message.message.partition(" ")[0] in CatalogueVersions.CHANNELS:
            self.announced.append(message.message)

    async def commit(self) -> None:
        if self._begun:
            with _away():
                await self._target.execute("COMMIT")

    async def rollback(self) -> None:
        if self._begun and not self._target.is_closed():
            with contextlib.suppress(*_AWAY, asyncpg.PostgresError):
                await self._target.execute("ROLLBACK")


class PgStatement(PgTransaction):
    """`Connection` for a body of one statement, which PostgreSQL makes atomic by itself:
    no BEGIN, no COMMIT.  A second statement is a bug of the caller's, refused before it
    is sent (it would not be atomic with the first)."""

    async def _begin(self, with_statement: str = "") -> None:
        if self._begun or with_statement:
            raise RuntimeError("Database.statement runs one statement, and no lock")
        self._begun = True

    async def commit(self) -> None:
        pass

    async def rollback(self) -> None:
        pass


class ReadOnly(PgConnection):
    """One connection that cannot write (`xingcheng verify`)."""

    @classmethod
    async def open(cls, url: str) -> ReadOnly:
        return cls(await asyncpg.connect(url, timeout=10, server_settings={
            "default_transaction_read_only": "on"}))

    async def close(self) -> None:
        await self._target.close()


def _arguments(parameters: Iterable[Any], names: tuple[str, ...] | None) -> list:
    if names is not None:
        assert isinstance(parameters, Mapping)
        return [parameters[name] for name in names]
    return list(parameters)


@contextlib.contextmanager
def _away():
    try:
        yield
    except _AWAY as exc:
        raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc


class PgDatabase:
    """`Database`'s interface over PostgreSQL."""

    engine = "postgresql"

    def __init__(self, url: str, clock: Clock, pool_size: int = 10, *,
                 acquire_timeout: float = 5.0, connect_timeout: float = 5.0) -> None:
        self.path = url   # what logs print: the URL names the database as a path does a file
        self.url = url
        self.clock = clock
        self.pool_size = pool_size
        self.acquire_timeout = acquire_timeout
        self.connect_timeout = connect_timeout
        self.commits = 0
        self._pool: asyncpg.Pool | None = None
        self._versions = CatalogueVersions(url, connect_timeout)

    async def open(self) -> None:
        # Every connection opened at start: none is opened under load, when a busy loop
        # could stretch its handshake past the connect timeout.
        # Kept open for good, and handed back as they are: asyncpg's default reset (a round
        # trip of UNLISTEN, RESET ALL...) after every pooled read would double its cost, and
        # the mall leaves nothing on a pooled connection (its settings are transaction-local,
        # its advisory lock transaction-scoped, its LISTEN on a connection of its own).
        self._pool = await asyncpg.create_pool(
            self.url, min_size=self.pool_size, max_size=self.pool_size,
            max_inactive_connection_lifetime=0, reset=_as_it_is, statement_cache_size=1024,
            timeout=self.connect_timeout, server_settings=SESSION_SETTINGS)
        async with self._pool.acquire() as conn:
            await _migrate(conn, self.clock)
        await self._versions.start()

    async def close(self) -> None:
        await self._versions.stop()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @contextlib.asynccontextmanager
    async def _connection(self):
        assert self._pool is not None, "database is not open"
        try:
            conn = await self._pool.acquire(timeout=self.acquire_timeout)
        except _AWAY as exc:
            raise DatabaseUnavailable(f"no database connection: {type(exc).__name__}") from exc
        try:
            yield conn
        finally:
            await self._pool.release(conn)

    async def transaction(self, body: Callable[[PgConnection], Awaitable[T]], *,
                          long: bool = False) -> T:
        """Run `body` in one transaction, again (up to TRANSACTION_RETRIES times) when it
        met a concurrent one (a deadlock, a unique row committed meanwhile); `long` is
        SQLite's concern."""
        return await self._run(body, PgTransaction)

    async def statement(self, body: Callable[[PgConnection], Awaitable[T]]) -> T:
        """`transaction` for a body of one statement: without BEGIN and COMMIT, two round
        trips fewer (a customer's login)."""
        return await self._run(body, PgStatement)

    async def _run(self, body: Callable[[PgConnection], Awaitable[T]],
                   kind: type[PgTransaction]) -> T:
        for attempt in range(TRANSACTION_RETRIES):
            try:
                async with self._connection() as conn:
                    tx = kind(conn)
                    conn.add_log_listener(tx.heard)
                    try:
                        result = await body(tx)
                        await tx.commit()
                    except BaseException:
                        await tx.rollback()
                        raise
                    finally:
                        conn.remove_log_listener(tx.heard)
                self.commits += 1
                # Learnt after the commit, never before it: a page read between the two
                # would be cached under the new version while showing the old rows.
                for announced in tx.announced:
                    self._versions.learn(*announced.split(" ", 1))
                return result
            except _RETRY:
                await asyncio.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))
        raise DatabaseUnavailable("too many concurrent transactions on the same rows")

    def reader(self) -> PgConnection:
        assert self._pool is not None, "database is not open"
        return PgConnection(self._pool)

    def scan_reader(self) -> PgConnection:
        return self.reader()

    def catalogue_version(self, store_id: int) -> int | None:
        return self._versions.get("catalogue", store_id)

    def content_version(self, store_id: int) -> int | None:
        return self._versions.get("catalogue_content", store_id)

    async def catalogue_now(self, wanted: Iterable[tuple[int, int]] = ()
                            ) -> dict[tuple[int, int], int] | None:
        """Every catalogue version committed before now is known to `catalogue_version` and
        `content_version`, and the units available now of each (store, SKU) wanted are
        returned (a SKU the store does not stock is absent); None when the versions cannot
        be known (then nothing may be served from a cache)."""
        return await self._versions.caught_up(wanted)

    async def checkpoint(self, truncate: bool = False) -> None:
        """PostgreSQL checkpoints by itself; `truncate` (after personal data was erased)
        vacuums the tables that held it, so no dead row version keeps the old values."""
        if truncate:
            async with self._connection() as conn:
                with _away():
                    await conn.execute("VACUUM users, addresses, idempotency_keys")

    async def after_bulk_load(self) -> None:
        """Identity columns continue after the ids a bulk load chose, and the planner learns
        the loaded tables' sizes (COPY leaves no statistics: until autovacuum came round,
        a city's first minutes were planned as if its tables were empty).

        A table the load left empty (orders, payments, order lines...) is not analysed.  An
        analysed empty table is one the planner believes empty, and a prepared statement's
        generic plan, made in a mall's first seconds, then scans it: cheapest for no rows,
        and kept for the connection's life while the table grows, unless autovacuum analyses
        it again (CI's server runs without).  At the late-night crest every lookup of an
        order by its id, and every foreign key check naming one, read the whole table.  A
        table never analysed is planned as at least ten pages, by its index."""
        async with self._connection() as conn:
            tables = await conn.fetch(
                "SELECT table_name FROM information_schema.columns WHERE column_name = 'id'"
                " AND is_identity = 'YES' AND table_schema = current_schema()")
            for (table,) in tables:
                await conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)")
            for (table,) in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"):
                if await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{table}")'):
                    await conn.execute(f'ANALYZE "{table}"')


async def _as_it_is(conn: asyncpg.Connection) -> None:
    """A pooled connection needs no reset (see `PgDatabase.open`), unless a transaction was
    left open on it (its task cancelled in the middle of its ROLLBACK)."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def _migrate(conn: asyncpg.Connection, clock: Clock) -> list[str]:
    """Every migration not yet recorded, all in one transaction under an advisory lock, so
    that workers starting together on an empty database migrate it once."""
    applied = []
    async with conn.transaction():
        await conn.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER"
                           " PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
        done = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migrations("postgresql"):
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations VALUES ($1, $2, $3)",
                               version, name, clock.stamp())
            applied.append(name)
    return applied


class CatalogueVersions:
    """Every store's catalogue versions, as the database announces them (LISTEN catalogue,
    moved by any change a page shows, and catalogue_content, by any but stock; migrations
    0007 and 0018).  A store not heard of since the listener connected is at the version
    `_epoch`: a negative number, unlike any the sequence gives, so the first change announced
    for it outdates what was cached under it; each reconnection takes a new one, outdating
    everything cached before.  While the listener is down nothing is known (every page is
    read afresh).  Nothing here writes, not even a sequence.

    An announcement reaches this process a moment after the writer's COMMIT returns, which
    is after a customer may have been told of the change by another process (a gray release's
    other build).  So a lookup first waits for `caught_up`: any query on the listening
    connection makes its server send the notifications pending for it before it answers, and
    asyncpg hands them over before the answer.  Lookups arriving together share one query, so
    a crest costs one round trip at a time per process, on a connection outside the pool; the
    query reads the stock the lookups' pages show, which changes with every order."""

    CHANNELS = ("catalogue", "catalogue_content")

    def __init__(self, url: str, connect_timeout: float) -> None:
        self._url = url
        self._timeout = connect_timeout
        self._known: dict[str, dict[int, int]] = {channel: {} for channel in self.CHANNELS}
        self._epoch = 0
        self._live = False
        self._conn: asyncpg.Connection | None = None
        self._keeper: asyncio.Task | None = None
        self._asker: asyncio.Task | None = None
        # The lookups waiting for a new query, and the (store, SKU) pairs they want
        self._next_ask: asyncio.Future | None = None
        self._wanted: set[tuple[int, int]] = set()

    def get(self, channel: str, store_id: int) -> int | None:
        return self._known[channel].get(store_id, self._epoch) if self._live else None

    def learn(self, channel: str, announced: str | None) -> None:
        """Versions from 'store:version store:version ...' (what a transaction made)."""
        if not announced or not self._live:
            return
        known = self._known[channel]
        for pair in announced.split():
            store, _, version = pair.partition(":")
            store_id, number = int(store), int(version)
            if number > known.get(store_id, 0):
                known[store_id] = number

    async def caught_up(self, wanted: Iterable[tuple[int, int]] = ()
                        ) -> dict[tuple[int, int], int] | None:
        """Once every version committed before the call has been heard, the units available
        of the (store, SKU) pairs wanted by this round's lookups; None when the listener is
        known to be down (then `get` answers None too)."""
        if not self._live:
            return None
        if self._next_ask is None:
            self._next_ask = asyncio.get_running_loop().create_future()
            if self._asker is None or self._asker.done():
                self._asker = asyncio.create_task(self._ask())
        self._wanted.update(wanted)
        return await asyncio.shield(self._next_ask)

    async def _ask(self) -> None:
        """One query per round of waiting lookups; those arriving while it runs wait for the
        next, since the one running may have been answered before their writer committed."""
        while self._next_ask is not None:
            waiting, self._next_ask = self._next_ask, None
            wanted, self._wanted = self._wanted, set()
            stock: dict[tuple[int, int], int] | None = None
            try:
                if self._live and self._conn is not None:
                    stores = [store_id for store_id, _ in wanted]
                    skus = [sku_id for _, sku_id in wanted]
                    rows = await self._conn.fetch(
                        "SELECT i.store_id, i.sku_id, i.on_hand - i.reserved FROM inventory i"
                        " JOIN unnest($1::bigint[], $2::bigint[]) AS w (store_id, sku_id)"
                        " ON i.store_id = w.store_id AND i.sku_id = w.sku_id",
                        stores, skus, timeout=self._timeout)
                    stock = {(row[0], row[1]): row[2] for row in rows} if self._live else None
            except (*_AWAY, asyncpg.PostgresError):
                self._live = False   # unsure what was missed: know nothing until reconnected
                if self._conn is not None:
                    self._conn.terminate()
            finally:
                waiting.set_result(stock)

    def _heard(self, _conn, _pid, channel: str, payload: str) -> None:
        self.learn(channel, payload)

    def _lost(self, _conn) -> None:
        self._live = False   # announcements may be missed from now on: know nothing

    async def start(self) -> None:
        await self._connect()
        self._keeper = asyncio.create_task(self._keep())

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._url, timeout=self._timeout)
        conn.add_termination_listener(self._lost)
        for channel in self.CHANNELS:
            await conn.add_listener(channel, self._heard)
        self._known = {channel: {} for channel in self.CHANNELS}
        self._epoch -= 1
        self._conn, self._live = conn, True

    async def _keep(self) -> None:
        """Reconnect the listener whenever it is lost (a database restart)."""
        while True:
            await asyncio.sleep(0.2)
            if self._conn is not None and not self._conn.is_closed():
                continue
            self._live = False
            with contextlib.suppress(*_AWAY, asyncpg.PostgresError):
                await self._connect()

    async def stop(self) -> None:
        self._live = False
        for task in (self._keeper, self._asker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._next_ask is not None and not self._next_ask.done():
            self._next_ask.set_result(None)
        if self._conn is not None:
            with contextlib.suppress(*_AWAY):
                await self._conn.close(timeout=2)
        self._live = False
