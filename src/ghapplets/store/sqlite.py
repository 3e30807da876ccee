"""The embedded history and secret stores on the SQLite database.

The logic is :mod:`ghapplets.store.relational`'s; this module runs its writes inside the
database's group-committed writer thread, as plain SQL on the DB-API cursor (which skips
SQLAlchemy's statement machinery on the hot paths), and its queries as SQLAlchemy Core.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.engine import Connection

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


class SqliteHistoryStore(OnSqlite, SqlHistoryStore, SqlAdminStore):
    pass


class SqliteSecretStore(OnSqlite, SqlSecretStore):
    pass
