"""Replicas: turn leases and event sequence numbers on chats, the events table, the replica
registry, where each agent link is held, and the service's own secrets.

Revision ID: 0006
Revises: 0005

Additive. A chat left ``running`` by an older server has no lease, so the first replica to start
takes it over and marks its turn interrupted, as a restart did before.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("chats") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(32), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", _ts, nullable=True))
        batch.add_column(sa.Column("event_seq", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("turn_seq", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("interrupt_turn", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("pending_step", sa.JSON, nullable=True))
        batch.create_index("ix_chats_lease_owner", ["lease_owner"])
    op.create_table(
        "chat_events",
        sa.Column("chat_id", sa.String(32), sa.ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("stored_at", _ts, nullable=False),
    )
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", _ts, nullable=False),
        sa.Column("heartbeat_at", _ts, nullable=False),
    )
    op.create_table(
        "agent_links",
        sa.Column(
            "workspace_id",
            sa.String(32),
            sa.ForeignKey("workspaces.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("replica_id", sa.String(32), nullable=True),
        sa.Column("connected_since", _ts, nullable=True),
        sa.Column("disconnected_since", _ts, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("agent_version", sa.String(64), nullable=True),
        sa.Column("peer", sa.String(300), nullable=True),
    )
    op.create_table(
        "service_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("created_at", _ts, nullable=False),
    )


def downgrade() -> None:
    for table in ("service_secrets", "agent_links", "replicas", "chat_events"):
        op.drop_table(table)
    with op.batch_alter_table("chats") as batch:
        batch.drop_index("ix_chats_lease_owner")
        for column in ("pending_step", "interrupt_turn", "turn_seq", "event_seq", "lease_expires_at"):
            batch.drop_column(column)
        batch.drop_column("lease_owner")
