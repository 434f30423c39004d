"""Seal the secrets the server sends on: workspaces' agent tokens and admin MCP servers' header
values, stored in plaintext until now, are sealed with the server's secret key (workdock.secretbox).

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Callable

import sqlalchemy as sa
from alembic import context, op

from workdock.secretbox import SecretBox, is_sealed

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_workspaces = sa.table("workspaces", sa.column("id", sa.String), sa.column("agent_token", sa.Text))
_servers = sa.table("mcp_servers", sa.column("id", sa.String), sa.column("headers", sa.JSON))


def _box() -> SecretBox:
    box = context.config.attributes.get("secret_box")
    if not isinstance(box, SecretBox):
        raise RuntimeError("this migration needs the server's secret key (workdock.chat.store.db.migrate)")
    return box


def _convert(change: Callable[[str], str], wanted: Callable[[str], bool]) -> None:
    bind = op.get_bind()
    for row in bind.execute(sa.select(_workspaces.c.id, _workspaces.c.agent_token)).all():
        if wanted(row.agent_token):
            bind.execute(
                _workspaces.update()
                .where(_workspaces.c.id == row.id)
                .values(agent_token=change(row.agent_token))
            )
    for row in bind.execute(sa.select(_servers.c.id, _servers.c.headers)).all():
        headers = row.headers or {}
        if any(wanted(value) for value in headers.values()):
            converted = {name: change(value) if wanted(value) else value for name, value in headers.items()}
            bind.execute(_servers.update().where(_servers.c.id == row.id).values(headers=converted))


def upgrade() -> None:
    box = _box()
    _convert(box.seal, lambda value: not is_sealed(value))


def downgrade() -> None:
    box = _box()
    _convert(box.open, is_sealed)
