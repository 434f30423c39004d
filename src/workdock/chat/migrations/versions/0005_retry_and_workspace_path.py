"""Retry and interrupted marks: superseded messages, queued re-runs; a workspace's path.

A chat left ``interrupted`` gets the interrupted mark its history now carries.

Revision ID: 0005
Revises: 0003
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None

INTERRUPTED = {"type": "interrupted", "text": "Interrupted."}


def upgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("path", sa.Text, nullable=True))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("superseded", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("queued_messages") as batch:
        batch.add_column(sa.Column("rerun_of", sa.Integer, nullable=True))

    chats = sa.table("chats", sa.column("id", sa.String), sa.column("status", sa.String))
    messages = sa.table(
        "messages",
        sa.column("chat_id", sa.String),
        sa.column("role", sa.String),
        sa.column("parts", sa.JSON),
        sa.column("superseded", sa.Boolean),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    connection = op.get_bind()
    interrupted = connection.execute(sa.select(chats.c.id).where(chats.c.status == "interrupted")).scalars()
    now = datetime.now(UTC)
    rows = [
        {
            "chat_id": chat_id,
            "role": "assistant",
            "parts": [INTERRUPTED],
            "superseded": False,
            "created_at": now,
        }
        for chat_id in interrupted
    ]
    if rows:
        connection.execute(sa.insert(messages), rows)


def downgrade() -> None:
    with op.batch_alter_table("queued_messages") as batch:
        batch.drop_column("rerun_of")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("superseded")
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("path")
