"""Initial schema: broker messages, deliveries, jobs, attempts, dead letters, secrets.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_messages",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("stream", sa.String(64), nullable=False),
        sa.Column("msg_id", sa.String(512), nullable=False),
        sa.Column("headers", sa.Text, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("available_at", sa.Float, nullable=False),
        sa.Column("delivered", sa.Integer, nullable=False),
        sa.Column("state", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.UniqueConstraint("stream", "msg_id", name="uq_broker_stream_msg"),
    )
    op.create_index("ix_broker_pending", "broker_messages", ["state", "stream", "seq"])
    op.create_table(
        "deliveries",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(512), primary_key=True),
        sa.Column("type", sa.String(512), nullable=False),
        sa.Column("subject", sa.Text, nullable=True),
        sa.Column("time", sa.String(64), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("jobs_total", sa.Integer, nullable=False),
        sa.Column("jobs_succeeded", sa.Integer, nullable=False),
        sa.Column("jobs_dead", sa.Integer, nullable=False),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("headers", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_deliveries_received", "deliveries", ["received_at"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(600), primary_key=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("delivery_id", sa.String(512), nullable=False),
        sa.Column("applet", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=True),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("error_type", sa.String(128), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
    )
    op.create_index("ix_jobs_delivery", "jobs", ["source", "delivery_id"])
    op.create_index("ix_jobs_status", "jobs", ["status", "updated_at"])
    op.create_table(
        "attempts",
        sa.Column("job_id", sa.String(600), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_type", sa.String(128), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("logs", sa.Text, nullable=True),
    )
    op.create_table(
        "dead_letters",
        sa.Column("job_id", sa.String(600), primary_key=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("delivery_id", sa.String(512), nullable=False),
        sa.Column("applet", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("dead_at", sa.Float, nullable=False),
    )
    op.create_table(
        "secrets",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("scope", sa.String(128), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("secrets", "dead_letters", "attempts", "jobs", "deliveries", "broker_messages"):
        op.drop_table(table)
