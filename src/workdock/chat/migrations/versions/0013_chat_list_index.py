"""An index for listing a user's chats a page at a time, most recently updated first.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_chats_user_updated", "chats", ["user_id", "updated_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_chats_user_updated", table_name="chats")
