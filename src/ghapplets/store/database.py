"""The embedded SQLite database: WAL mode, one writer thread with group commit, reader threads.

Every write is a function of a SQLAlchemy :class:`~sqlalchemy.engine.Connection`. Callers await
:meth:`Database.write`; the writer thread drains all queued writes, runs them in **one**
transaction and commits once (group commit), then resolves every caller's future. Throughput is
therefore bounded by commits per second times the batch size, not by one commit per request.
If any write in a batch fails, the batch is rolled back and each write is retried in its own
transaction so one bad write never fails its neighbours.

Files: a new database is created ``0600`` in a folder created ``0700`` (its ``-wal`` and ``-shm``
files and lock files are ``0600`` too): it holds every event received.

Durability (``storage.sync``): WAL with ``synchronous=NORMAL`` survives a crash (``kill -9``) of
the process at any moment, but a power loss may roll back the commits since the WAL was last
synced (at a checkpoint); ``synchronous=FULL`` also survives power loss, at the cost of an fsync
per (group) commit.

Several processes may write the same file (gateway processes publish, the worker consumes).
SQLite lets one transaction write at a time; a writer that finds the lock taken sleeps in
SQLite's busy handler (1, 2, 5, 10, ... ms) and polls, which ruins tail latency. So every write
transaction first takes an exclusive ``flock`` on ``<file>.write.lock`` (just before ``BEGIN
IMMEDIATE``, released right after ``COMMIT``/``ROLLBACK``): the kernel queues the writers and
wakes the next one the moment the lock is released, and SQLite's busy handler never runs.

Checkpoints (copying the WAL back into the database file, with an fsync) run in a background
thread on their own connection, not in the writer: SQLite's automatic checkpoint would stall
every ~4 MB of commits for the copy and the fsync. Checkpoints are passive (they never block
the writer); when the WAL passes ``WAL_RESTART_PAGES`` and every frame was copied, one checkpoint
also rewinds it, which waits for the writer's current transaction and briefly holds the next one
(under the write lock, so writers wait in the kernel rather than in the busy handler), and for
readers at most ``RESTART_WAIT_MS``. A long reader (``ghapplets backup``) holds an older snapshot
the WAL must keep: the WAL grows meanwhile, and rewinds after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from ghapplets.datadir import create_private_file, private_dir
from ghapplets.exceptions import StoreUnavailable
from ghapplets.store.migrations import upgrade

T = TypeVar("T")
WriteFn = Callable[[Connection], Any]
_STOP = object()
# The writer refreshes the query planner's statistics this often (``PRAGMA optimize``, which
# analyses only tables whose indexes it used and whose size changed a lot; a no-op costs ~10 us).
# Without statistics SQLite may pick a low-selectivity index (e.g. jobs by status) and a query
# that should touch one row scans a whole table, slower with every row stored.
OPTIMIZE_EVERY = 1.0
CHECKPOINT_EVERY = 0.1  # seconds between background checkpoints
WAL_RESTART_PAGES = 32768  # 128 MB of WAL (4 KB pages)
RESTART_WAIT_MS = 50  # how long rewinding the WAL waits for readers, holding the writers off


class _Write:
    __slots__ = ("fn", "future", "loop")

    def __init__(self, fn: WriteFn, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]):
        self.fn = fn
        self.loop = loop
        self.future = future


def _resolve(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in items:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class _WriteLock:
    """The cross-process writer lock: ``flock`` on ``<database file>.write.lock``.

    ``flock`` belongs to an open file description, which this process's threads share, so a
    thread lock orders the threads of one process and the ``flock`` orders the processes.
    """

    def __init__(self, database: Path, enabled: bool) -> None:
        self.database = database
        self.enabled = enabled
        self._threads = threading.Lock()
        self._fd: int | None = None

    def _file(self) -> int:
        if self._fd is None:
            # the real path, so processes that reach the file through other paths share it
            path = os.path.realpath(self.database) + ".write.lock"
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        with self._threads:
            fd = self._file()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._threads:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class Database:
    """An SQLite database file used by the embedded store and broker; several processes may
    open the same file (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "normal",
        batch_max: int = 512,
        write_lock: bool = True,
        busy_timeout_ms: int = 10_000,
    ) -> None:
        """``write_lock=False`` leaves writers to SQLite's busy handler (benchmarks only);
        ``busy_timeout_ms`` is how long a connection waits for a lock before it fails."""
        self.path = path
        self.synchronous = synchronous.upper()
        self.batch_max = batch_max
        self.busy_timeout_ms = busy_timeout_ms
        self.write_lock = _WriteLock(path, write_lock)
        self.engine: Engine = self._make_engine()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_stop = threading.Event()
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ghapplets-read")
        self._reader_local = threading.local()
        self._closed = True
        self.commits = 0

    def _make_engine(self) -> Engine:
        engine = create_engine(f"sqlite:///{self.path}", poolclass=NullPool)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={self.synchronous}")
            cur.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA analysis_limit=400")  # bounds the cost of ANALYZE
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # writers take the lock up front so they never fail half-way with SQLITE_BUSY
            immediate = conn.get_execution_options().get("immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> None:
        """Create the file if needed, migrate it to the newest schema, start the writer."""
        if not self._closed:
            return
        # owner-only: SQLite gives the -wal and -shm files the database file's mode
        private_dir(self.path.parent)
        create_private_file(self.path)
        # processes starting together must not both apply the same migration
        with self.write_lock.held(), self.engine.connect() as conn:
            upgrade(conn)
            conn.commit()
        self._closed = False
        self._writer = threading.Thread(
            target=self._write_loop, name="ghapplets-writer", daemon=True
        )
        self._writer.start()
        self._checkpoint_stop.clear()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="ghapplets-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        if self._writer is not None:
            self._writer.join(timeout=30)
        self._checkpoint_stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=30)
        self._readers.shutdown(wait=True)
        self.engine.dispose()
        self.write_lock.close()

    @property
    def is_open(self) -> bool:
        return not self._closed

    # -- writes ------------------------------------------------------------------------------
    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in the writer thread inside a group-committed transaction."""
        if self._closed:
            raise StoreUnavailable("the database is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Write(fn, loop, future))
        return await future

    def _write_loop(self) -> None:
        conn = self.engine.connect().execution_options(immediate=True)
        # checkpoints are the checkpointer thread's job (see the module docstring)
        conn.connection.driver_connection.execute(  # type: ignore[union-attr]
            "PRAGMA wal_autocheckpoint=0"
        )
        optimized_at = time.monotonic()
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch: list[_Write] = [first]
                stop = False
                while len(batch) < self.batch_max:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
                self._run_batch(conn, batch)
                if stop:
                    return
                if time.monotonic() - optimized_at >= OPTIMIZE_EVERY:
                    optimized_at = time.monotonic()
                    self._optimize(conn)
        finally:
            conn.close()

    def _checkpoint_loop(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            while not self._checkpoint_stop.wait(CHECKPOINT_EVERY):
                try:
                    _busy, wal_pages, copied = conn.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchone()
                    # while the writer never pauses, the WAL is never fully copied at the start
                    # of a transaction, so it never rewinds: make it, once it is big enough.
                    # Not while a reader holds an older snapshot (a backup: frames it still
                    # needs were not copied), and never waiting long for readers: the writers
                    # wait for the write lock meanwhile
                    if wal_pages >= WAL_RESTART_PAGES and copied == wal_pages:
                        conn.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
                        try:
                            with self.write_lock.held():
                                conn.execute("PRAGMA wal_checkpoint(RESTART)")
                        finally:
                            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
                except sqlite3.Error:  # busy or a passing I/O error: try again next round
                    continue
        finally:
            conn.close()

    def _optimize(self, conn: Connection) -> None:
        # statistics are an optimisation: never fail the writer over them
        with contextlib.suppress(Exception), self.write_lock.held(), conn.begin():
            conn.exec_driver_sql("PRAGMA optimize")

    def _run_batch(self, conn: Connection, batch: list[_Write]) -> None:
        results: list[tuple[asyncio.Future[Any], bool, Any]] = []
        lock = self.write_lock
        try:
            with lock.held(), conn.begin():
                for item in batch:
                    results.append((item.future, True, item.fn(conn)))
            self.commits += 1
        except Exception:  # one write failed: isolate it
            results = []
            for item in batch:
                try:
                    with lock.held(), conn.begin():
                        value = item.fn(conn)
                    results.append((item.future, True, value))
                    self.commits += 1
                except Exception as exc:
                    results.append((item.future, False, exc))
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for item, res in zip(batch, results, strict=True):
            by_loop.setdefault(item.loop, []).append(res)
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, items)
            except RuntimeError:  # loop closed: nobody waits any more
                pass

    # -- reads -------------------------------------------------------------------------------
    def _reader_conn(self) -> Connection:
        conn: Connection | None = getattr(self._reader_local, "conn", None)
        if conn is None:
            conn = self.engine.connect()
            self._reader_local.conn = conn
        return conn

    def _run_read(self, fn: Callable[[Connection], T]) -> T:
        conn = self._reader_conn()
        try:
            with conn.begin():
                return fn(conn)
        except Exception:
            conn.close()
            self._reader_local.conn = None
            raise

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` on a reader connection in a thread (WAL lets it run beside writes)."""
        if self._closed:
            raise StoreUnavailable("the database is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn)

    def read_sync(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn, conn.begin():
            return fn(conn)
