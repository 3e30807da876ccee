"""The SQLite database: migrations, group commit, isolation of a failing write."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from ghapplets.exceptions import StoreUnavailable
from ghapplets.store import database
from ghapplets.store.database import Database, WriteFn
from ghapplets.store.schema import metadata
from tests.store.schema_check import schema_differences


def _insert(i: int) -> WriteFn:
    def op(conn: Connection) -> int:
        conn.exec_driver_sql(
            "INSERT INTO secrets (name, scope, ciphertext, created_at, updated_at) "
            "VALUES (?, 'global', x'00', 0, 0)",
            (f"s{i}",),
        )
        return i

    return op


def test_migrations_create_the_schema(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db")
    db.open()
    try:
        tables = set(inspect(db.engine).get_table_names())
        assert set(metadata.tables) <= tables
        assert "alembic_version" in tables
        for name, table in metadata.tables.items():
            columns = {c["name"] for c in inspect(db.engine).get_columns(name)}
            assert columns == {c.name for c in table.columns}, name
        assert db.read_sync(schema_differences) == []
        mode = db.read_sync(lambda c: c.exec_driver_sql("PRAGMA journal_mode").scalar())
        assert mode == "wal"
    finally:
        db.close()
    db2 = Database(tmp_path / "x.db")  # opening again is a no-op migration
    db2.open()
    db2.close()


async def test_failing_write_does_not_fail_its_batch(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db")
    db.open()

    def bad(conn: Connection) -> None:
        conn.exec_driver_sql("INSERT INTO no_such_table VALUES (1)")

    results = await asyncio.gather(
        *(db.write(_insert(i)) for i in range(20)), db.write(bad), return_exceptions=True
    )
    assert results[:20] == list(range(20))
    assert isinstance(results[20], Exception)
    count = await db.read(lambda c: c.exec_driver_sql("SELECT count(*) FROM secrets").scalar())
    assert count == 20
    db.close()
    with pytest.raises(StoreUnavailable):
        await db.write(_insert(99))


def test_the_head_read_from_file_names_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    from ghapplets.store.migrations import alembic_config, head_revision

    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_a_database_at_head_is_recognised_without_alembic(tmp_path: Path) -> None:
    from ghapplets.store.migrations import current_revision, head_revision

    db = Database(tmp_path / "h.db")
    with db.engine.connect() as conn:
        assert current_revision(conn) is None  # new: no version table yet
    db.open()
    db.close()
    with db.engine.connect() as conn:
        assert current_revision(conn) == head_revision()


def _wal_frames(path: Path) -> int:
    """Frames in the WAL now (by a passive checkpoint of its own, which copies what it can:
    test_the_checkpointer_keeps_the_wal_file_from_growing shows the checkpointer alone)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    finally:
        conn.close()


def _filler(i: int | str) -> Callable[[Connection], None]:
    def op(conn: Connection) -> None:
        conn.exec_driver_sql(
            "INSERT INTO secrets (name, scope, ciphertext, created_at, updated_at) "
            "VALUES (?, 'global', ?, 0, 0)",
            (f"s{i}", os.urandom(3000)),
        )

    return op


async def _rewound(db: Database, path: Path, timeout: float = 10.0) -> None:
    """Wait until a write goes to the beginning of the WAL (it was rewound)."""
    deadline = time.monotonic() + timeout
    while True:
        await db.write(_filler(os.urandom(8).hex()))  # a rewound WAL is reset by the next write
        if _wal_frames(path) < 20:
            return
        assert time.monotonic() < deadline, "gave up waiting for the WAL to rewind"
        await asyncio.sleep(0.05)


async def test_the_wal_rewinds_once_big_but_not_under_a_long_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past WAL_RESTART_PAGES the WAL is rewound (writes start again at its beginning). A reader
    holding an older snapshot (a backup) must not make the writers wait for it: the rewind
    waits until it is gone, and a write meanwhile is as quick as ever."""
    monkeypatch.setattr(database, "WAL_RESTART_PAGES", 40)
    path = tmp_path / "x.db"
    db = Database(path)
    db.open()
    try:
        for i in range(30):  # about 30 pages of 4 KB each, then more: past the threshold
            await db.write(_filler(i))
        await _rewound(db, path)

        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM secrets").fetchone()  # holds this snapshot
        try:
            for i in range(30, 90):
                await db.write(_filler(i))
            await asyncio.sleep(5 * database.CHECKPOINT_EVERY)  # rounds of the checkpointer
            for i in range(90, 95):  # the old code held the write lock for the busy timeout
                await asyncio.wait_for(db.write(_filler(i)), timeout=2)
            assert _wal_frames(path) >= 40  # kept for the reader
        finally:
            reader.execute("COMMIT")
            reader.close()
        await _rewound(db, path)  # once the reader is gone
    finally:
        db.close()


async def test_the_writer_keeps_the_query_planners_statistics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After writes, the writer runs PRAGMA optimize (every OPTIMIZE_EVERY seconds): a table
    whose indexes a query had to choose between is analysed, so the planner picks well."""
    monkeypatch.setattr(database, "OPTIMIZE_EVERY", 0.0)
    db = Database(tmp_path / "x.db")
    db.open()

    def put(conn: Connection) -> None:
        for i in range(2000):
            conn.exec_driver_sql(
                "INSERT INTO secret_reads (id, at, reader, name, backend, outcome, count)"
                " VALUES (?, ?, 'r', ?, 'b', 'ok', 1)",
                (f"i{i}", float(i), f"s{i % 7}"),
            )

    def choose(conn: Connection) -> None:  # by name and time: two indexes to choose from
        conn.exec_driver_sql("SELECT id FROM secret_reads WHERE name = 's1' AND at > 5").all()

    def analysed(conn: Connection) -> set[str]:
        tables = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
        if "sqlite_stat1" not in {name for (name,) in tables}:
            return set()
        return {idx for (idx,) in conn.exec_driver_sql("SELECT idx FROM sqlite_stat1")}

    try:
        await db.write(put)
        await db.write(choose)
        await db.write(lambda conn: None)  # the batch after it has certainly been followed
        assert {"ix_secret_reads_name_at", "ix_secret_reads_at"} <= db.read_sync(analysed)
    finally:
        db.close()


def test_a_process_that_never_closes_its_database_still_exits(tmp_path: Path) -> None:
    """The writer and checkpointer threads do not hold the interpreter open (a command that
    ends on an error before it closes the store must not hang)."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ghapplets.store.database import Database\n"
        "Database(Path(sys.argv[1])).open()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr


def _blocking_write(started: threading.Event, release: threading.Event) -> WriteFn:
    def op(conn: Connection) -> str:
        started.set()
        assert release.wait(10)
        return "first"

    return op


async def _wait_for_queue(db: Database, size: int) -> None:
    deadline = time.monotonic() + 10
    while db._queue.qsize() < size:
        assert time.monotonic() < deadline, "the writes were not queued"
        await asyncio.sleep(0.005)


async def test_queued_writes_are_committed_in_batches_of_at_most_batch_max(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "x.db", batch_max=2)
    db.open()
    started, release = threading.Event(), threading.Event()
    try:
        first = asyncio.create_task(db.write(_blocking_write(started, release)))
        assert await asyncio.to_thread(started.wait, 10)  # the writer is busy with it
        queued = [asyncio.create_task(db.write(_insert(i))) for i in range(5)]
        await _wait_for_queue(db, 5)
        before = db.commits
        release.set()
        assert await first == "first"
        assert await asyncio.gather(*queued) == [0, 1, 2, 3, 4]
        assert db.commits - before == 1 + 3  # the busy write's, then 2 + 2 + 1
    finally:
        release.set()
        db.close()


async def test_close_commits_the_writes_queued_before_it_and_stops_the_writer(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "x.db")
    db.open()
    started, release = threading.Event(), threading.Event()
    try:
        first = asyncio.create_task(db.write(_blocking_write(started, release)))
        assert await asyncio.to_thread(started.wait, 10)
        queued = [asyncio.create_task(db.write(_insert(i))) for i in range(3)]
        await _wait_for_queue(db, 3)
        closing = asyncio.create_task(asyncio.to_thread(db.close))
        await _wait_for_queue(db, 4)  # the stop is queued behind the writes
        release.set()
        async with asyncio.timeout(20):
            await closing
            assert await first == "first"
            assert await asyncio.gather(*queued) == [0, 1, 2]
        assert db._writer is not None and not db._writer.is_alive()
    finally:
        release.set()
        db.close()
    db.open()  # what was committed before the close is there
    try:
        names = db.read_sync(lambda c: c.exec_driver_sql("SELECT name FROM secrets").all())
        assert sorted(n for (n,) in names) == ["s0", "s1", "s2"]
    finally:
        db.close()


async def test_the_checkpointer_keeps_the_wal_file_from_growing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer never checkpoints (wal_autocheckpoint=0): the checkpointer thread copies the
    WAL into the database and rewinds it, so the -wal file stays about WAL_RESTART_PAGES long
    however much is written. (Nothing here checkpoints: the file's size is only looked at.)"""
    monkeypatch.setattr(database, "WAL_RESTART_PAGES", 40)
    path = tmp_path / "x.db"
    db = Database(path)
    db.open()
    try:
        for burst in range(10):  # 10 x 20 writes of ~4 pages, with time to checkpoint between
            for i in range(20):
                await db.write(_filler(f"{burst}-{i}"))
            await asyncio.sleep(5 * database.CHECKPOINT_EVERY)
        wal_pages = path.with_name("x.db-wal").stat().st_size / 4096
        assert wal_pages < 400, wal_pages  # about a burst's 80, of the 800 written
    finally:
        db.close()
