"""The audit log of secret reads: who read which secret, from which backend, when, and how it
ended (never the value), on both stores, bounded by ``storage.audit_retention_days``.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secret_reads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("reader", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(128), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    op.create_index("ix_secret_reads_at", "secret_reads", ["at"])
    op.create_index("ix_secret_reads_name_at", "secret_reads", ["name", "at"])


def downgrade() -> None:
    op.drop_index("ix_secret_reads_name_at", table_name="secret_reads")
    op.drop_index("ix_secret_reads_at", table_name="secret_reads")
    op.drop_table("secret_reads")
