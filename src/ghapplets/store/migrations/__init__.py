"""Alembic migrations for the relational store; :func:`upgrade` brings a database to head.

The same history runs on SQLite and PostgreSQL. On PostgreSQL several processes may start at once
(replicas of the gateway and the worker): each takes one advisory lock around its upgrade, so one
migrates while the others wait and then find the schema at head.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

HERE = Path(__file__).parent
# pg_advisory_lock's key for migrations: the bytes of "ghapplet" as one bigint (any fixed number
# works; this one will not collide with a lock another application takes by accident)
MIGRATION_LOCK_KEY = int.from_bytes(b"ghapplet", "big")


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@contextlib.contextmanager
def _migration_lock(connection: Connection) -> Iterator[None]:
    """On PostgreSQL, hold the migration lock; the upgrade commits before the lock is let go, so
    the next process to take it sees the new schema. (SQLite needs none: its caller holds the
    database's write lock, and only one process serves an embedded data folder.)"""
    if connection.dialect.name != "postgresql":
        yield
        return
    key = {"key": MIGRATION_LOCK_KEY}
    connection.execute(text("SELECT pg_advisory_lock(:key)"), key)
    try:
        yield
        connection.commit()
    finally:
        # a lost connection lets go of the lock (and undoes its transaction) by itself
        with contextlib.suppress(Exception):
            connection.rollback()  # after a failed upgrade: undo what it did
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
            connection.commit()


def upgrade(connection: Connection, revision: str = "head") -> None:
    with _migration_lock(connection):
        command.upgrade(alembic_config(connection), revision)
