"""repositories.sparse_indexes: whether an index may name manifests the repository lacks

NULL follows the site setting (`index_platforms`); mirrored repositories start with it on, as
new mirrors do.

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
    op.add_column("repositories", sa.Column("sparse_indexes", sa.Boolean(), nullable=True))
    op.execute(
        "UPDATE repositories SET sparse_indexes = TRUE "
        "WHERE id IN (SELECT repository_id FROM mirrors)"
    )


def downgrade() -> None:
    with op.batch_alter_table("repositories") as batch:
        batch.drop_column("sparse_indexes")
