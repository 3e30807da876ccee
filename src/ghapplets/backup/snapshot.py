"""A consistent snapshot of a running store, read into an :class:`ArchiveWriter`.

Every table is read inside **one** read transaction, so the backup is the store as it was at
one moment, while the server goes on:

- the embedded SQLite file: a connection of its own (not the server's writer) in a deferred
  transaction; in WAL mode its first read fixes the snapshot and writers are never blocked;
- PostgreSQL: one ``SERIALIZABLE READ ONLY DEFERRABLE`` transaction, which waits (briefly) for
  a snapshot that no serialization anomaly can touch and then never blocks or fails a writer.

Rows are read in primary-key order, a page at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import asyncpg
from sqlalchemy import LargeBinary, func, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from ghapplets import __version__
from ghapplets.backends import DB_FILE
from ghapplets.backup.archive import ArchiveWriter, Manifest
from ghapplets.backup.tables import DEDUP_MEMBER, EVENTS_MEMBER, member_of, tables
from ghapplets.broker.base import EVENTS
from ghapplets.config.models import ProjectConfig
from ghapplets.exceptions import BackupError
from ghapplets.store.database import Database
from ghapplets.store.migrations import current_revision
from ghapplets.store.schema import broker_messages

Progress = Callable[[str, int, int], None]  # (table, rows done, rows in all)
PAGE = 500
CONNECT_TIMEOUT = 10.0
PENDING = 0  # broker_messages.state of a message not yet settled


def quiet(_table: str, _done: int, _total: int) -> None:
    return None


def dump(conn: Connection, writer: ArchiveWriter, progress: Progress = quiet) -> Manifest:
    """Read every table the backup holds into ``writer``, in the caller's transaction; the
    manifest (without its members, which the writer fills in)."""
    inspector = inspect(conn)
    existing = set(inspector.get_table_names())
    revision = current_revision(conn) if "alembic_version" in existing else None
    if revision is None:
        raise BackupError("there is no Ghapplets store here to back up (no schema)")
    counts: dict[str, int] = {}
    for table in tables():
        if table.name not in existing:  # a store at an older schema
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        columns = [c for c in table.columns if c.name in present]
        sink = writer.member(
            member_of(table), [c.name for c in columns if isinstance(c.type, LargeBinary)]
        )
        total = conn.execute(select(func.count()).select_from(table)).scalar_one()
        progress(table.name, 0, total)
        query = select(*columns).order_by(*table.primary_key.columns)
        for row in conn.execution_options(yield_per=PAGE).execute(query).mappings():
            sink.write(dict(row))
            if sink.rows % PAGE == 0:
                progress(table.name, sink.rows, total)
        progress(table.name, sink.rows, total)
        counts[str(table.name)] = sink.rows
    if broker_messages.name in existing:
        _dump_broker(conn, writer)
    return Manifest(schema=revision, storage="", broker="", ghapplets=__version__, counts=counts)


def _dump_broker(conn: Connection, writer: ArchiveWriter) -> None:
    """The embedded broker's memory of accepted events (ids) and its undispatched events."""
    b = broker_messages.c
    dedup = writer.member(DEDUP_MEMBER)
    seen = select(b.msg_id, b.created_at).where(b.stream == EVENTS, b.state != PENDING)
    for row in conn.execution_options(yield_per=PAGE).execute(seen.order_by(b.seq)).mappings():
        dedup.write(dict(row))
    events = writer.member(EVENTS_MEMBER, ["data"])
    waiting = select(b.msg_id, b.headers, b.data, b.created_at).where(
        b.stream == EVENTS, b.state == PENDING
    )
    for row in conn.execution_options(yield_per=PAGE).execute(waiting.order_by(b.seq)).mappings():
        events.write(dict(row))


def pg_engine(url: str) -> AsyncEngine:
    """An engine of one connection at a time to the database ``url`` (asyncpg's URL)."""
    return create_async_engine(
        "postgresql+asyncpg://",
        async_creator=lambda: asyncpg.connect(url, timeout=CONNECT_TIMEOUT),
        poolclass=NullPool,
    )


def snapshot_sqlite(path: Path, writer: ArchiveWriter, progress: Progress = quiet) -> Manifest:
    if not path.exists():
        raise BackupError(f"there is no Ghapplets store at {path}")
    db = Database(path)
    try:
        return db.read_sync(lambda conn: dump(conn, writer, progress))
    finally:
        db.engine.dispose()


async def snapshot_postgres(
    url: str, writer: ArchiveWriter, progress: Progress = quiet
) -> Manifest:
    engine = pg_engine(url)
    try:
        async with engine.connect() as conn:
            snap = await conn.execution_options(
                isolation_level="SERIALIZABLE",
                postgresql_readonly=True,
                postgresql_deferrable=True,
            )
            return await snap.run_sync(lambda sync: dump(sync, writer, progress))
    finally:
        await engine.dispose()


async def snapshot(
    config: ProjectConfig, data_dir: Path, writer: ArchiveWriter, progress: Progress = quiet
) -> Manifest:
    """The project's store, read into ``writer``; its manifest."""
    if config.storage.backend == "postgresql":
        assert config.storage.url is not None  # the config requires it
        manifest = await snapshot_postgres(config.storage.url, writer, progress)
    else:
        manifest = await asyncio.to_thread(snapshot_sqlite, data_dir / DB_FILE, writer, progress)
    manifest.storage = config.storage.backend
    manifest.broker = config.broker.backend
    return manifest
