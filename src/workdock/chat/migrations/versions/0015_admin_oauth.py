"""Per-user OAuth sign-in to admin MCP servers: the server's kind of auth and pre-registered
client, each user's sealed sign-in record, and pending sign-ins of either kind.

Existing servers keep their static headers (``auth`` "headers"); existing pending sign-ins are
workspace ones.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mcp_servers") as batch:
        batch.add_column(sa.Column("auth", sa.String(16), nullable=False, server_default="headers"))
        batch.add_column(sa.Column("oauth", sa.JSON(), nullable=True))
    op.create_table(
        "mcp_signins",
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column(
            "server_id",
            sa.String(32),
            sa.ForeignKey("mcp_servers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("signed_in", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_mcp_signins_server_id", "mcp_signins", ["server_id"])
    with op.batch_alter_table("pending_signins") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="workspace"))
        batch.add_column(
            sa.Column(
                "mcp_server_id",
                sa.String(32),
                sa.ForeignKey("mcp_servers.id", name="fk_pending_signins_mcp_server", ondelete="CASCADE"),
                nullable=True,
            )
        )
        batch.add_column(sa.Column("replica_id", sa.String(64), nullable=True))
        batch.alter_column("workspace_id", existing_type=sa.String(32), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM pending_signins WHERE kind <> 'workspace'")
    with op.batch_alter_table("pending_signins") as batch:
        batch.alter_column("workspace_id", existing_type=sa.String(32), nullable=False)
        batch.drop_column("replica_id")
        batch.drop_column("mcp_server_id")
        batch.drop_column("kind")
    op.drop_table("mcp_signins")
    with op.batch_alter_table("mcp_servers") as batch:
        batch.drop_column("oauth")
        batch.drop_column("auth")
