"""An index for listing a user's chats a page at a time, most recently updated first; and a
chat's history version, raised when stored messages change (0 for existing chats).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chats") as batch:
        batch.add_column(sa.Column("history_version", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_chats_user_updated", "chats", ["user_id", "updated_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_chats_user_updated", table_name="chats")
    with op.batch_alter_table("chats") as batch:
        batch.drop_column("history_version")
