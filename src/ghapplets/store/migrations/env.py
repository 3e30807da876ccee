"""Alembic environment: runs migrations on the connection the caller hands over."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo

from ghapplets.crashpoints import CrashPoint, reached
from ghapplets.store.schema import metadata


def _applied(
    ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
) -> None:
    reached(CrashPoint.MIGRATION_STEP)


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    on_version_apply=_applied,
)
with context.begin_transaction():
    context.run_migrations()
