"""Blueprint runs (RunStore): the runs, their journals of steps, their listeners and the
events delivered to them, and the outbox of events their steps emit.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blueprint_runs",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("wake_at", sa.Float(), nullable=True),
        sa.Column("trigger", sa.String(1024), nullable=True),
        sa.Column("resumes", sa.Integer(), nullable=False),
    )
    op.create_index("ix_blueprint_runs_started", "blueprint_runs", ["started_at"])
    op.create_index("ix_blueprint_runs_status_started", "blueprint_runs", ["status", "started_at"])
    op.create_index("ix_blueprint_runs_name_started", "blueprint_runs", ["name", "started_at"])
    op.create_index("ix_blueprint_runs_status_wake", "blueprint_runs", ["status", "wake_at"])
    op.create_index(
        "ix_blueprint_runs_status_finished", "blueprint_runs", ["status", "finished_at"]
    )
    op.create_table(
        "blueprint_steps",
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("key", sa.String(1024), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("record", sa.Text(), nullable=False),
        sa.UniqueConstraint("run_id", "position", name="uq_blueprint_steps_position"),
    )
    op.create_table(
        "blueprint_listeners",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("event_type", sa.String(512), nullable=True),
        sa.Column("filters", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_blueprint_listeners_type", "blueprint_listeners", ["event_type"])
    op.create_index("ix_blueprint_listeners_run", "blueprint_listeners", ["run_id", "key"])
    op.create_table(
        "blueprint_inbox",
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("key", sa.String(1024), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("event_source", sa.String(512), nullable=False),
        sa.Column("event_id", sa.String(512), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("delivered_at", sa.Float(), nullable=False),
        sa.UniqueConstraint(
            "run_id", "key", "event_source", "event_id", name="uq_blueprint_inbox_event"
        ),
    )
    op.create_table(
        "blueprint_outbox",
        sa.Column("id", sa.String(512), primary_key=True),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
    )
    op.create_index("ix_blueprint_outbox_created", "blueprint_outbox", ["created_at", "ordinal"])


def downgrade() -> None:
    op.drop_index("ix_blueprint_outbox_created", table_name="blueprint_outbox")
    op.drop_table("blueprint_outbox")
    op.drop_table("blueprint_inbox")
    op.drop_index("ix_blueprint_listeners_run", table_name="blueprint_listeners")
    op.drop_index("ix_blueprint_listeners_type", table_name="blueprint_listeners")
    op.drop_table("blueprint_listeners")
    op.drop_table("blueprint_steps")
    for index in (
        "ix_blueprint_runs_status_finished",
        "ix_blueprint_runs_status_wake",
        "ix_blueprint_runs_name_started",
        "ix_blueprint_runs_status_started",
        "ix_blueprint_runs_started",
    ):
        op.drop_index(index, table_name="blueprint_runs")
    op.drop_table("blueprint_runs")
