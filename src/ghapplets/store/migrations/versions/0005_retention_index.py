"""Retention by status and time received: an index on deliveries (status, received_at).

Retention deletes the oldest deliveries of the statuses it prunes (succeeded and unmatched after
``storage.retention_days``, failed after ``storage.dead_letter_retention_days``). With this index
each chunk is a range scan of exactly those rows; with ``received_at`` alone it would scan past
every old delivery it keeps (unfinished, or failed and within their longer retention) each time.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_status_received", "deliveries", ["status", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_status_received", table_name="deliveries")
