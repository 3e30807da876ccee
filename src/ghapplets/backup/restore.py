"""Restore a backup archive into a project's store, then queue its unfinished work again.

:func:`load` runs on one database connection: it migrates an empty target to the archive's
schema revision, refuses a target that holds records (unless ``force``, which clears it),
inserts every table's rows in one transaction, and then migrates to the newest revision, so an
archive of an older schema is brought forward like any database. On the embedded broker it
also writes the ids of the events the backup had accepted, as settled messages, so a webhook
sent again is still answered as a duplicate.

:func:`requeue` then rebuilds the queue from the store, as ``replay`` does: each job that was
queued, running or retrying is queued again (same job id, attempts so far kept), each run that
was pending or running gets a run message (waiting runs are woken by their timers and
listeners, which live in the store), and the events the embedded broker had accepted but not
dispatched are published again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Integer, delete, func, insert, inspect, literal, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from ghapplets.backup.archive import Archive
from ghapplets.backup.snapshot import PAGE, Progress, pg_engine, quiet
from ghapplets.backup.tables import DEDUP_MEMBER, EVENTS_MEMBER, member_of, tables
from ghapplets.broker.base import EVENTS, Broker, OutboundMessage
from ghapplets.datadir import create_private_file, private_dir
from ghapplets.exceptions import BackupInvalid, RestoreRefused
from ghapplets.store.base import Store
from ghapplets.store.database import Database
from ghapplets.store.migrations import current_revision, head_revision, upgrade
from ghapplets.store.records import JobStatus, RunStatus
from ghapplets.store.schema import broker_messages, deliveries, leases

UNFINISHED_JOBS = frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING})
MOVING_RUNS = frozenset({RunStatus.PENDING, RunStatus.RUNNING})
SETTLED = 1  # broker_messages.state of an acknowledged message


@dataclass(slots=True)
class Loaded:
    """What :func:`load` wrote, and the work it left to queue again."""

    counts: dict[str, int] = field(default_factory=dict)
    jobs: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    events: list[OutboundMessage] = field(default_factory=list)
    dedup: int = 0
    accepted: list[tuple[str, float]] = field(default_factory=list)  # deliveries' broker ids
    purged: int = 0  # messages of the old queue deleted (``force`` on NATS)


def load(
    conn: Connection,
    archive: Archive,
    *,
    force: bool = False,
    embedded_broker: bool = False,
    progress: Progress = quiet,
) -> Loaded:
    """Restore ``archive`` into the database of ``conn`` (see the module docstring)."""
    revision, head = archive.manifest.schema, head_revision()
    if revision > head:
        raise BackupInvalid(
            f"the backup's schema revision {revision} is newer than this version's ({head}): "
            "restore it with the Ghapplets that made it, or a newer one"
        )
    current = current_revision(conn)
    if current is None or current < revision:
        upgrade(conn, revision)
    conn.commit()
    existing = set(inspect(conn).get_table_names())
    conn.commit()
    loaded = Loaded()
    with conn.begin():
        _clear_or_refuse(conn, existing, force=force, embedded_broker=embedded_broker)
        for table in tables():
            name = member_of(table)
            if name not in archive.manifest.members:
                continue
            total = archive.manifest.members[name].rows
            progress(table.name, 0, total)
            batch: list[dict[str, Any]] = []
            done = 0
            for row in archive.rows(name):
                unknown = set(row) - set(table.columns.keys())
                if unknown:
                    raise BackupInvalid(f"{name} has columns this schema lacks: {sorted(unknown)}")
                _note(loaded, table.name, row)
                batch.append(row)
                if len(batch) >= PAGE:
                    conn.execute(insert(table), batch)
                    done += len(batch)
                    batch = []
                    progress(table.name, done, total)
            if batch:
                conn.execute(insert(table), batch)
                done += len(batch)
            progress(table.name, done, total)
            loaded.counts[str(table.name)] = done
        loaded.events = [_event(row) for row in archive.rows(EVENTS_MEMBER)]
        if embedded_broker:
            loaded.dedup = _seed_dedup(conn, archive, loaded)
        _reset_sequences(conn)
    upgrade(conn)
    conn.commit()
    return loaded


def _clear_or_refuse(
    conn: Connection, existing: set[str], *, force: bool, embedded_broker: bool
) -> None:
    held = [
        t.name
        for t in tables()
        if t.name in existing
        and conn.execute(select(literal(1)).select_from(t).limit(1)).first() is not None
    ]
    if held and not force:
        raise RestoreRefused(
            f"the target store is not empty (it holds {', '.join(held)}): restore into an "
            "empty data folder or database, or give --force to replace what it holds"
        )
    if not force:
        return
    for table in reversed(tables()):
        if table.name in existing:
            conn.execute(delete(table))
    conn.execute(delete(leases))
    if embedded_broker and broker_messages.name in existing:
        conn.execute(delete(broker_messages))  # the old queue: its work is not restored


def _note(loaded: Loaded, table: str, row: dict[str, Any]) -> None:
    """Remember what the rows of ``table`` leave to do after the load."""
    if table == "jobs" and row.get("status") in UNFINISHED_JOBS:
        loaded.jobs.append(row["id"])
    elif table == "blueprint_runs" and row.get("status") in MOVING_RUNS:
        loaded.runs.append(row["id"])
    elif table == deliveries.name:
        loaded.accepted.append((f"{row['source']}:{row['id']}", float(row["received_at"])))


def _event(row: dict[str, Any]) -> OutboundMessage:
    headers = orjson.loads(row["headers"])
    return OutboundMessage(EVENTS, row["msg_id"], headers, row.get("data") or b"")


def _seed_dedup(conn: Connection, archive: Archive, loaded: Loaded) -> int:
    """Write the ids of the events accepted before the backup into the embedded broker as
    settled messages: the broker's duplicate check finds them (retention prunes them with the
    other settled messages). An event still to dispatch is left out: it is published again."""
    pending = {e.msg_id for e in loaded.events}
    seen = [(row["msg_id"], float(row["created_at"])) for row in archive.rows(DEDUP_MEMBER)]
    ids: dict[str, float] = {}
    for msg_id, at in (*seen, *loaded.accepted):
        if msg_id not in pending:
            ids.setdefault(msg_id, at)
    rows = [
        {
            "stream": EVENTS,
            "msg_id": msg_id,
            "headers": "{}",
            "data": None,
            "created_at": at,
            "available_at": at,
            "delivered": 1,
            "state": SETTLED,
        }
        for msg_id, at in ids.items()
    ]
    statement = sqlite_insert(broker_messages).on_conflict_do_nothing()
    for i in range(0, len(rows), PAGE):
        conn.execute(statement, rows[i : i + PAGE])
    return len(rows)


def _reset_sequences(conn: Connection) -> None:
    """On PostgreSQL, move each serial key's sequence past the ids restored (SQLite takes the
    next rowid by itself)."""
    if conn.dialect.name != "postgresql":
        return
    for table in tables():
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or keys[0].autoincrement is not True:
            continue
        column = keys[0]
        if not isinstance(column.type, Integer):
            continue
        after = select(func.coalesce(func.max(column), 0) + 1).scalar_subquery()
        sequence = func.pg_get_serial_sequence(table.name, column.name)
        conn.execute(select(func.setval(sequence, after, False)))


def load_sqlite(
    path: Path,
    archive: Archive,
    *,
    force: bool,
    embedded_broker: bool,
    progress: Progress = quiet,
) -> Loaded:
    """Restore into the embedded database file ``path`` (created, owner-only, if missing)."""
    private_dir(path.parent)
    create_private_file(path)
    db = Database(path)
    try:
        with db.write_lock.held(), db.engine.connect() as conn:
            return load(
                conn, archive, force=force, embedded_broker=embedded_broker, progress=progress
            )
    finally:
        db.engine.dispose()
        db.write_lock.close()


def seed_broker_file(path: Path, archive: Archive, loaded: Loaded, *, force: bool) -> None:
    """The embedded broker beside a PostgreSQL store (``storage: postgresql`` with ``broker:
    sqlite``): after :func:`load_postgres`, write the accepted ids into the data folder's
    database as :func:`load` does for a store in that file (and, with ``force``, delete the
    old queue there first)."""
    db = Database(path)
    db.open()  # created owner-only and migrated, like a server's
    try:
        with db.write_lock.held(), db.engine.connect() as conn, conn.begin():
            if force:
                conn.execute(delete(broker_messages))
            loaded.dedup = _seed_dedup(conn, archive, loaded)
    finally:
        db.close()


async def load_postgres(
    url: str, archive: Archive, *, force: bool, progress: Progress = quiet
) -> Loaded:
    engine = pg_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: load(sync, archive, force=force, progress=progress)
            )
    finally:
        await engine.dispose()


async def requeue(store: Store, broker: Broker, loaded: Loaded) -> None:
    """Queue the unfinished work of a restored store again (see the module docstring)."""
    # imported here: the dispatch modules pull in the applet and blueprint runtimes
    from ghapplets.dispatch.replay import replay_job
    from ghapplets.dispatch.runs import run_message

    for job_id in loaded.jobs:
        await replay_job(store, broker, job_id)
    if loaded.runs:
        restore = uuid.uuid4().hex[:12]
        await broker.publish_many([run_message(r, f"restore-{restore}") for r in loaded.runs])
    if loaded.events:
        await broker.publish_many(loaded.events)
