"""Secret key ids: which key encrypted each secret, so key rotation can be checked and resumed.

Secrets stored before have none (NULL): they were encrypted with the key in use then, in the
``v1`` format (bound to the name only); ``ghapplets secrets rotate-key`` rewrites them.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("secrets", sa.Column("key_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("secrets") as batch:
        batch.drop_column("key_id")
