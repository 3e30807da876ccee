"""The SQLite database: migrations, group commit, isolation of a failing write."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from ghapplets.exceptions import StoreUnavailable
from ghapplets.store.database import Database
from ghapplets.store.schema import metadata
from tests.store.schema_check import schema_differences


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

    def good(i: int):
        def op(conn: Connection) -> int:
            conn.exec_driver_sql(
                "INSERT INTO secrets (name, scope, ciphertext, created_at, updated_at) "
                "VALUES (?, 'global', x'00', 0, 0)",
                (f"s{i}",),
            )
            return i

        return op

    def bad(conn: Connection) -> None:
        conn.exec_driver_sql("INSERT INTO no_such_table VALUES (1)")

    results = await asyncio.gather(
        *(db.write(good(i)) for i in range(20)), db.write(bad), return_exceptions=True
    )
    assert results[:20] == list(range(20))
    assert isinstance(results[20], Exception)
    count = await db.read(lambda c: c.exec_driver_sql("SELECT count(*) FROM secrets").scalar())
    assert count == 20
    db.close()
    with pytest.raises(StoreUnavailable):
        await db.write(good(99))


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
