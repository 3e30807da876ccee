"""Broker leases: who holds a fetched message, and an index to fetch due messages by time.

A fetch leases what it returns (``holder``, ``available_at`` = end of the lease) and reads
pending messages of one stream in due order, so the old ``(state, stream, seq)`` index gives way
to ``(state, stream, available_at, seq)``, which also serves depth counts.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("broker_messages", sa.Column("holder", sa.String(64), nullable=True))
    op.create_index("ix_broker_due", "broker_messages", ["state", "stream", "available_at", "seq"])
    op.drop_index("ix_broker_pending", table_name="broker_messages")


def downgrade() -> None:
    op.create_index("ix_broker_pending", "broker_messages", ["state", "stream", "seq"])
    op.drop_index("ix_broker_due", table_name="broker_messages")
    with op.batch_alter_table("broker_messages") as batch:
        batch.drop_column("holder")
