"""A chat's tool settings: what it turned off, and its own tool budget.

Both are null for existing chats: nothing turned off, the server's budget.

Revision ID: 0012
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chats") as batch:
        batch.add_column(sa.Column("disabled_tools", sa.JSON, nullable=True))
        batch.add_column(sa.Column("tool_budget", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chats") as batch:
        batch.drop_column("tool_budget")
        batch.drop_column("disabled_tools")
