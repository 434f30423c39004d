"""Queued messages keep their parts: attached resources, a prompt's messages.

Existing rows are plain text and keep a null ``parts``.

Revision ID: 0010
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("queued_messages") as batch:
        batch.add_column(sa.Column("parts", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("queued_messages") as batch:
        batch.drop_column("parts")
