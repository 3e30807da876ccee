"""The embedded history and secret stores on the SQLite database.

The logic is :mod:`ghapplets.store.relational`'s; this module runs its writes inside the
database's group-committed writer thread, as plain SQL on the DB-API cursor (which skips
SQLAlchemy's statement machinery on the hot paths), and its queries as SQLAlchemy Core.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.engine import Connection

from ghapplets.crashpoints import CrashPoint, reached
from ghapplets.exceptions import StoreUnavailable
from ghapplets.store import sql
from ghapplets.store.admin import SqlAdminStore
from ghapplets.store.database import Database
from ghapplets.store.relational import (
    P,
    Relational,
    SqlHistoryStore,
    SqlSecretStore,
    Write,
)

T = TypeVar("T")


def run(cur: sqlite3.Cursor, write: Write[T]) -> T:
    """Run a write's steps on the cursor; its value."""
    result: Any = None
    while True:
        try:
            step = write.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        result = None
        if step.kind == "many":
            cur.executemany(step.sql, step.params)
        elif step.kind != "lock":  # the writer's transaction holds the whole database
            cur.execute(step.sql, step.params)
            if step.kind == "execute":
                result = cur.rowcount
            elif step.kind == "first":
                result = cur.fetchone()
            elif step.kind == "rows":
                result = cur.fetchall()


class OnSqlite(Relational):
    """Writes in the database's writer thread, queries on its reader threads."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _write(self, write: Callable[P, Write[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        def op(conn: Connection) -> T:
            cur: sqlite3.Cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cur.row_factory = sqlite3.Row  # rows readable by column name
            return run(cur, write(*args, **kwargs))

        return await self.db.write(op)

    async def _query(self, query: Select[Any]) -> list[sql.Row]:
        return await self.db.read(lambda conn: list(conn.execute(query).mappings()))

    async def ping(self) -> None:
        # the file is local: open is ready (the embedded broker's ping reads the same file)
        if not self.db.is_open:
            raise StoreUnavailable("the database is closed")


BROKER_PRUNE_CHUNK = 1000  # broker messages looked at per transaction
# the oldest messages first, by the primary key: messages are numbered as they are published,
# so ``seq`` order is (all but) ``created_at`` order and no other index is needed
_BROKER_OLDEST = (
    "SELECT seq, state, created_at FROM broker_messages WHERE seq > ? ORDER BY seq LIMIT ?"
)
_BROKER_DELETE = "DELETE FROM broker_messages WHERE seq = ?"


def prune_broker_chunk(
    conn: Connection, older_than: float, after: int, limit: int
) -> tuple[int, int | None]:
    """Delete the settled (acked or dead) messages among the ``limit`` oldest after ``after``
    published before ``older_than``: how many, and where the next chunk starts (None once a
    newer message is reached, or none is left). Pending ones stay, whatever their age."""
    rows = conn.exec_driver_sql(_BROKER_OLDEST, (after, limit)).all()
    done = [r for r in rows if r.state != 0 and r.created_at < older_than]
    if done:
        conn.exec_driver_sql(_BROKER_DELETE, [(r.seq,) for r in done])
    newer = any(r.created_at >= older_than for r in rows)
    return len(done), None if newer or len(rows) < limit else rows[-1].seq


class SqliteHistoryStore(OnSqlite, SqlHistoryStore, SqlAdminStore):
    async def prune(self, older_than: float, *, dead_older_than: float | None = None) -> int:
        pruned = await super().prune(older_than, dead_older_than=dead_older_than)
        # the embedded broker lives in the same file: settled messages go with the history,
        # a chunk per transaction, so publishes (the gateways) go on between them
        after: int | None = 0
        while after is not None:
            chunk = functools.partial(
                prune_broker_chunk, older_than=older_than, after=after, limit=BROKER_PRUNE_CHUNK
            )
            _, after = await self.db.write(chunk)
            reached(CrashPoint.RETENTION_BATCH)
        return pruned


class SqliteSecretStore(OnSqlite, SqlSecretStore):
    pass
