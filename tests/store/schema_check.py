"""Does a migrated database match ``ghapplets.store.schema``? For every backend's tests."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from ghapplets.store.migrations import alembic_config
from ghapplets.store.schema import DIALECT_INDEXES, metadata


def schema_differences(conn: Connection) -> list[str]:
    """What differs between the database and the metadata (tables, columns, types, nullability,
    indexes, unique constraints), and whether it is at the newest revision; [] when it matches."""
    problems = [
        repr(diff)
        for diff in compare_metadata(MigrationContext.configure(conn), metadata)
        if not _dialect_index(diff)
    ]
    inspector = inspect(conn)
    # the indexes of one database only: there, and nowhere else
    indexes = {i["name"] for i in inspector.get_indexes("deliveries")}
    for name, dialect in DIALECT_INDEXES.items():
        if (name in indexes) != (dialect == conn.dialect.name):
            where = "missing" if dialect == conn.dialect.name else "unexpected"
            problems.append(f"{where} index {name} on {conn.dialect.name}")
    tables = set(inspector.get_table_names())
    problems += [f"missing table {name}" for name in set(metadata.tables) - tables]
    for name, table in metadata.tables.items():
        if name in tables:
            columns = {c["name"] for c in inspector.get_columns(name)}
            if columns != {c.name for c in table.columns}:
                problems.append(f"{name} has columns {sorted(columns)}")
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        problems.append(f"at revision {current}, not {head}")
    return problems


def _dialect_index(diff: object) -> bool:
    """Is ``diff`` an index of :data:`DIALECT_INDEXES` (not in the metadata by design)?"""
    return (
        isinstance(diff, tuple)
        and diff[0] == "remove_index"
        and getattr(diff[1], "name", None) in DIALECT_INDEXES
    )
