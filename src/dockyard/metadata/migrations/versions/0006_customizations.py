"""customizations, their targets and builds

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customizations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("uid", sa.String(32), nullable=False, unique=True),
        sa.Column("namespace_id", sa.Integer(), sa.ForeignKey("namespaces.id"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_customizations_namespace", "customizations", ["namespace_id"])
    op.create_table(
        "customization_targets",
        sa.Column(
            "customization_id",
            sa.Integer(),
            sa.ForeignKey("customizations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "repository_id",
            sa.Integer(),
            sa.ForeignKey("repositories.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("base_tag", sa.String(128), primary_key=True),
        sa.Column("result_tag", sa.String(128), nullable=False),
        sa.UniqueConstraint("repository_id", "result_tag"),
    )
    op.create_index(
        "ix_customization_targets_base", "customization_targets", ["repository_id", "base_tag"]
    )
    op.create_table(
        "builds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "customization_id",
            sa.Integer(),
            sa.ForeignKey("customizations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "repository_id",
            sa.Integer(),
            sa.ForeignKey("repositories.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("base_tag", sa.String(128), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("trigger_detail", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("jobs.id", ondelete="SET NULL")),
        sa.Column("lock", sa.Text(), nullable=True),
        sa.Column("changes", sa.Text(), nullable=True),
        sa.Column("result_digest", sa.String(80), nullable=True),
        sa.Column("outputs", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("log", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_builds_customization", "builds", ["customization_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_builds_customization", "builds")
    op.drop_table("builds")
    op.drop_index("ix_customization_targets_base", "customization_targets")
    op.drop_table("customization_targets")
    op.drop_index("ix_customizations_namespace", "customizations")
    op.drop_table("customizations")
