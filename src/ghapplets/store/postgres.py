"""The history and secret stores on PostgreSQL (asyncpg), for replicated deployments.

:class:`PostgresDatabase` is a process's pool of connections to one database. ``open`` migrates
the schema (Alembic, under an advisory lock, so replicas may start together) and fills the pool.

Writes are group-committed like the embedded database's (:mod:`ghapplets.store.database`), with
a task instead of a thread: callers await a future; writes made while a transaction runs (or in
one event-loop turn) queue up, and one drain task runs everything queued in **one** transaction.
If that transaction fails, each write is run again alone, so one bad write never fails its
neighbours. Queries run on the pool beside the writer.

A connection the server dropped (a restart, a fail-over, a network cut) is replaced by the pool;
a write or query that was using it is run once more on a fresh one. When the server cannot be
reached, or cannot take work now, callers get :class:`StoreUnavailable`, never a driver error.
Every write is idempotent, so running one again after a commit whose answer was lost is safe.

The store's logic and SQL are shared with SQLite (:mod:`ghapplets.store.relational`,
:mod:`ghapplets.store.sql`); here they run on asyncpg, the driver chosen by measurement
(``bench/pg_drivers.py``, ``docs/architecture.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import Select, text
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from ghapplets.exceptions import StoreUnavailable
from ghapplets.store import sql
from ghapplets.store.admin import SqlAdminStore
from ghapplets.store.migrations import upgrade
from ghapplets.store.relational import P, Relational, SqlHistoryStore, SqlSecretStore, Write

T = TypeVar("T")
Fn = Callable[[Any], Awaitable[T]]  # a function of an asyncpg connection

CONNECT_TIMEOUT = 5.0  # seconds to open a connection
COMMAND_TIMEOUT = 60.0  # seconds for one statement: a hung server must not hang its callers
CLOSE_TIMEOUT = 10.0
_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]

# Server errors that say "not now" rather than "wrong statement": connection exceptions (08),
# insufficient resources (53: too many connections, disk full), operator intervention (57:
# shutting down, starting up, cancelled), and a read-only server (25006: a standby after a
# fail-over). asyncpg raises TimeoutError when a statement outlives COMMAND_TIMEOUT.
_UNAVAILABLE_CLASSES = ("08", "53", "57")
_UNAVAILABLE_STATES = ("25006",)


class _Lost(Exception):
    """The connection a transaction used is gone (or none could be opened)."""

    def __init__(self, cause: BaseException, *, connecting: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.connecting = connecting


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _Lost | TimeoutError | OSError):
        return True
    state = getattr(exc, "sqlstate", None)
    return (
        isinstance(exc, asyncpg.PostgresError)
        and isinstance(state, str)
        and (state[:2] in _UNAVAILABLE_CLASSES or state in _UNAVAILABLE_STATES)
    )


def _closed(conn: Any) -> bool:
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:  # closed, and handed back to the pool already
        return True


@functools.cache
def numbered(statement: str, lock: str = "") -> tuple[str, tuple[str, ...]]:
    """A shared statement with named parameters as asyncpg's ``$1, $2...`` text, and the
    parameter names in their order (``lock``: a locking clause to append)."""
    compiled = text(statement).compile(dialect=_DIALECT)
    return f"{compiled.string} {lock}".rstrip(), tuple(compiled.positiontup or ())


def _count(status: str) -> int:
    """The row count of a command status such as ``UPDATE 3`` or ``INSERT 0 1``."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else 0


async def run(conn: Any, write: Write[T]) -> T:
    """Run a write's steps on an asyncpg connection (in the caller's transaction)."""
    result: Any = None
    while True:
        try:
            step = write.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        statement, names = numbered(step.sql, step.lock)
        if step.kind == "many":
            await conn.executemany(statement, [[p[n] for n in names] for p in step.params])
            result = None
            continue
        args = [step.params[n] for n in names]
        if step.kind == "execute":
            result = _count(await conn.execute(statement, *args))
        elif step.kind == "first":
            result = await conn.fetchrow(statement, *args)
        else:  # rows, lock
            result = await conn.fetch(statement, *args)


class _Write:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Fn[Any], future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.future = future


class PostgresDatabase:
    """A pool of connections to one PostgreSQL database, with group-committed writes."""

    def __init__(self, url: str, pool_size: int = 10, *, batch_max: int = 512) -> None:
        self.url = url
        self.pool_size = pool_size
        self.batch_max = batch_max
        u = make_url(url)
        self.where = f"{u.host or 'localhost'}:{u.port or 5432}/{u.database or ''}"  # no password
        self._pool: Any = None  # asyncpg.Pool once open
        self._closing = False
        self._queue: list[_Write] = []
        self._drainer: asyncio.Task[None] | None = None
        self.commits = 0  # transactions committed by the writer (tests watch the batching)

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        """Migrate the database to the newest schema and open the pool."""
        if self._pool is not None:
            return
        try:
            await self._migrate()
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, DBAPIError) as exc:
            # unreachable, refused (authentication, no such database) or a failed migration
            raise StoreUnavailable(f"PostgreSQL at {self.where}: {exc}") from exc
        self._closing = False

    async def _migrate(self) -> None:
        engine = create_async_engine(
            "postgresql+asyncpg://",
            async_creator=lambda: asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT),
            poolclass=NullPool,
        )
        try:
            async with engine.connect() as conn:
                await conn.run_sync(upgrade)
        finally:
            await engine.dispose()

    async def close(self) -> None:
        """Finish the writes queued so far, then close the pool."""
        if self._pool is None:
            return
        self._closing = True
        if self._drainer is not None:
            await asyncio.shield(self._drainer)
        pool, self._pool = self._pool, None
        try:
            await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pool.terminate()

    @property
    def is_open(self) -> bool:
        return self._pool is not None and not self._closing

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers now."""
        await self.read(lambda conn: conn.fetchval("SELECT 1"))

    # -- connections -------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """A pooled connection; a failure that leaves it closed raises :class:`_Lost`."""
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("the PostgreSQL store is closed")
        try:
            conn = await pool.acquire()
        except Exception as exc:
            raise _Lost(exc, connecting=True) from exc
        try:
            yield conn
        except Exception as exc:
            if _closed(conn):
                raise _Lost(exc, connecting=False) from exc
            raise
        finally:
            with contextlib.suppress(Exception):  # a broken connection is dropped, not reused
                await pool.release(conn)

    async def _retried(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()``; once more if it lost an open connection (one the server dropped while
        it sat in the pool); StoreUnavailable for any failure that means "not now"."""
        try:
            try:
                return await attempt()
            except _Lost as lost:
                if lost.connecting:
                    raise
            return await attempt()
        except Exception as exc:
            if isinstance(exc, StoreUnavailable) or not _unavailable(exc):
                raise
            cause = exc.cause if isinstance(exc, _Lost) else exc
            detail = str(cause) or type(cause).__name__
            raise StoreUnavailable(f"PostgreSQL at {self.where}: {detail}") from cause

    async def read(self, fn: Fn[T]) -> T:
        """``fn(connection)`` on a pooled connection, outside the writer."""

        async def attempt() -> T:
            async with self._connection() as conn:
                return await fn(conn)

        return await self._retried(attempt)

    # -- writes ------------------------------------------------------------------------------
    async def write(self, fn: Fn[T]) -> T:
        """``fn(connection)`` in a group-committed transaction; ``fn`` may run more than once
        (alone, when a neighbour in its batch failed), so it must not keep state of its own."""
        if not self.is_open:
            raise StoreUnavailable("the PostgreSQL store is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Write(fn, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain(), name="ghapplets-pg-writer")
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self.batch_max]
                del self._queue[: self.batch_max]
                await self._run_batch(batch)
        finally:
            self._drainer = None
            for w in self._queue:  # only after a cancellation: nobody will run them
                _settle(w.future, exc=StoreUnavailable("the PostgreSQL store is closing"))
            self._queue.clear()

    async def _transaction(self, batch: list[_Write]) -> list[Any]:
        async with self._connection() as conn, conn.transaction():
            results = [await w.fn(conn) for w in batch]
        self.commits += 1
        return results

    async def _run_batch(self, batch: list[_Write]) -> None:
        try:
            try:
                results = await self._retried(lambda: self._transaction(batch))
            except StoreUnavailable as exc:  # for every write alike
                for w in batch:
                    _settle(w.future, exc=exc)
                return
            except Exception as exc:  # a bad write: find it
                if len(batch) == 1:
                    _settle(batch[0].future, exc=exc)
                else:
                    await self._run_alone(batch)
                return
        except BaseException:  # cancelled: the event loop is going away
            for w in batch:
                _settle(w.future, exc=StoreUnavailable("the PostgreSQL store is closing"))
            raise
        for w, value in zip(batch, results, strict=True):
            _settle(w.future, value)

    async def _run_alone(self, batch: list[_Write]) -> None:
        """Each write in a transaction of its own: only the bad one fails. Once the server is
        unavailable, the rest fail with it instead of each waiting for a connection."""
        down: StoreUnavailable | None = None
        for w in batch:
            if down is not None:
                _settle(w.future, exc=down)
                continue
            try:
                (value,) = await self._retried(functools.partial(self._transaction, [w]))
            except StoreUnavailable as exc:
                down = exc
                _settle(w.future, exc=exc)
            except Exception as exc:
                _settle(w.future, exc=exc)
            else:
                _settle(w.future, value)


def _settle(
    future: asyncio.Future[Any], value: Any = None, *, exc: BaseException | None = None
) -> None:
    if future.done():  # the caller was cancelled: the write ran anyway
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(value)


class OnPostgres(Relational):
    """Writes through the database's group-committed writer, queries on its pool."""

    dialect = "postgresql"

    def __init__(self, db: PostgresDatabase) -> None:
        self.db = db

    async def _write(self, write: Callable[P, Write[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.db.write(lambda conn: run(conn, write(*args, **kwargs)))

    async def _query(self, query: Select[Any]) -> list[sql.Row]:
        compiled = query.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
        args = [compiled.params[name] for name in compiled.positiontup or ()]
        rows: list[sql.Row] = await self.db.read(lambda conn: conn.fetch(compiled.string, *args))
        return rows

    async def ping(self) -> None:
        await self.db.ping()


class PostgresHistoryStore(OnPostgres, SqlHistoryStore, SqlAdminStore):
    pass


class PostgresSecretStore(OnPostgres, SqlSecretStore):
    pass
