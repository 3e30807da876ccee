"""Alembic migrations for the relational store; :func:`upgrade` brings a database to head.

The same history runs on SQLite and PostgreSQL. On PostgreSQL several processes may start at once
(replicas of the gateway and the worker): each takes one advisory lock around its upgrade, so one
migrates while the others wait and then find the schema at head.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from alembic.config import Config

HERE = Path(__file__).parent
# pg_advisory_lock's key for migrations: the bytes of "ghapplet" as one bigint (any fixed number
# works; this one will not collide with a lock another application takes by accident)
MIGRATION_LOCK_KEY = int.from_bytes(b"ghapplet", "big")


def head_revision() -> str:
    """The newest revision, read from the file names (``NNNN_name.py``, revision ``NNNN``);
    a test checks it against Alembic's own view of the history."""
    return max(f.name.split("_", 1)[0] for f in (HERE / "versions").glob("[0-9]*_*.py"))


def current_revision(connection: Connection) -> str | None:
    """The database's revision, or None when it has none yet (no Alembic import needed)."""
    try:
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:  # no table yet: a new database
        connection.rollback()
        return None
    return None if version is None else str(version)


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

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
    """Bring the database to ``revision``. A database already at head is left alone without
    loading Alembic (a large import that every process would otherwise pay at start)."""
    if revision == "head" and current_revision(connection) == head_revision():
        return
    from alembic import command

    with _migration_lock(connection):
        command.upgrade(alembic_config(connection), revision)
