"""Linked workspaces: the agent dials the server with a token of which only a hash is kept.

Revision ID: 0003
Revises: 0002

Additive: existing workspaces become ``connection = 'direct'`` (by the column's default) and keep
their URL and token; a linked one has neither, so both columns become nullable.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("connection", sa.String(8), nullable=False, server_default="direct"))
        batch.add_column(sa.Column("agent_token_hash", sa.String(64), nullable=True))
        batch.alter_column("agent_url", existing_type=sa.Text, nullable=True)
        batch.alter_column("agent_token", existing_type=sa.Text, nullable=True)
        batch.create_index("ix_workspaces_agent_token_hash", ["agent_token_hash"], unique=True)


def downgrade() -> None:
    op.execute("DELETE FROM workspaces WHERE connection = 'link'")
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_index("ix_workspaces_agent_token_hash")
        batch.alter_column("agent_token", existing_type=sa.Text, nullable=False)
        batch.alter_column("agent_url", existing_type=sa.Text, nullable=False)
        batch.drop_column("agent_token_hash")
        batch.drop_column("connection")
