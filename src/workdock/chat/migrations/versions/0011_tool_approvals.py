"""Tool approvals: a chat's approval policy and always-allowed tools, server settings, and the
stored calls of a step that waits for an approval.

Revision ID: 0011
Revises: 0005

Additive: existing chats get the policy ``auto`` (today's behaviour) by the column's default.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chats") as batch:
        batch.add_column(sa.Column("approval_policy", sa.String(16), nullable=False, server_default="auto"))
        batch.add_column(sa.Column("always_allow", sa.JSON, nullable=True))
    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON, nullable=False),
    )
    op.create_table(
        "step_calls",
        sa.Column("chat_id", sa.String(32), sa.ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tool_call_id", sa.String(200), primary_key=True),
        sa.Column("message_id", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("tool_name", sa.String(200), nullable=False),
        sa.Column("needs_approval", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("step_calls")
    op.drop_table("settings")
    with op.batch_alter_table("chats") as batch:
        batch.drop_column("always_allow")
        batch.drop_column("approval_policy")
