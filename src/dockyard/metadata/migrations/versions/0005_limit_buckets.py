"""limit_buckets: the limits' token buckets, shared by every node of a PostgreSQL site

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "limit_buckets",
        sa.Column("key", sa.LargeBinary(16), primary_key=True),
        sa.Column("stamp", sa.Float(), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("taken", sa.Integer(), nullable=False),
        sa.Column("idle_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_limit_buckets_idle_at", "limit_buckets", ["idle_at"])


def downgrade() -> None:
    op.drop_index("ix_limit_buckets_idle_at", "limit_buckets")
    op.drop_table("limit_buckets")
