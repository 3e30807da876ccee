"""The admin API: its tokens (hashes only) and audit log, and the indexes its lists page by.

- ``api_tokens`` and ``audit_log`` (``ghapplets.store.schema``);
- keyset pages of deliveries (newest first, of one source or type), of jobs (newest first by
  creation, of one status or applet) and of dead letters; ``ix_deliveries_page`` replaces
  ``ix_deliveries_received`` (its first column);
- the subject search: on SQLite a covering index the search scans instead of the table; on
  PostgreSQL a trigram index (the ``pg_trgm`` extension, created here when it is not yet;
  where it cannot be, the index is left out and a search scans: see docs/admin-api.md).

Revision ID: 0009
Revises: 0008
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

log = logging.getLogger("ghapplets.migrations")

# ghapplets.store.schema.DIALECT_INDEXES names them: indexes of one database only
SEARCH_INDEXES = {
    "sqlite": "CREATE INDEX ix_deliveries_search ON deliveries (received_at, source, id, subject)",
    "postgresql": "CREATE INDEX ix_deliveries_subject_trgm"
    " ON deliveries USING gin (subject gin_trgm_ops)",
}


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_used_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.UniqueConstraint("name", name="uq_api_tokens_name"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(1024), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at", "id"])
    op.drop_index("ix_deliveries_received", table_name="deliveries")
    op.create_index("ix_deliveries_page", "deliveries", ["received_at", "source", "id"])
    op.create_index("ix_deliveries_source_received", "deliveries", ["source", "received_at"])
    op.create_index("ix_deliveries_type_received", "deliveries", ["type", "received_at"])
    op.create_index("ix_jobs_page", "jobs", ["created_at", "id"])
    op.create_index("ix_jobs_status_created", "jobs", ["status", "created_at"])
    op.create_index("ix_jobs_applet_created", "jobs", ["applet", "created_at"])
    op.create_index("ix_dead_letters_dead_at", "dead_letters", ["dead_at"])
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect == "postgresql" and not _trigrams(bind):
        return
    if dialect in SEARCH_INDEXES:
        op.execute(SEARCH_INDEXES[dialect])


def _trigrams(bind: sa.engine.Connection) -> bool:
    """Is ``pg_trgm`` installed, or can it be now? (In a savepoint: a refusal, by a server
    without the extension or a role without the right, leaves the migration going on.)"""
    installed = "SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'"
    if bind.execute(sa.text(installed)).first() is not None:
        return True
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        log.warning(
            "pg_trgm cannot be created (%s): the admin API's subject search will scan",
            str(exc).splitlines()[0],
        )
        return False
    return True


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_deliveries_search")
    op.execute("DROP INDEX IF EXISTS ix_deliveries_subject_trgm")
    op.drop_index("ix_dead_letters_dead_at", table_name="dead_letters")
    op.drop_index("ix_jobs_applet_created", table_name="jobs")
    op.drop_index("ix_jobs_status_created", table_name="jobs")
    op.drop_index("ix_jobs_page", table_name="jobs")
    op.drop_index("ix_deliveries_type_received", table_name="deliveries")
    op.drop_index("ix_deliveries_source_received", table_name="deliveries")
    op.drop_index("ix_deliveries_page", table_name="deliveries")
    op.create_index("ix_deliveries_received", "deliveries", ["received_at"])
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("api_tokens")
