"""Sign-ins begun from the web UI, waiting for their callback.

Two kinds share the one callback (``GET /oauth/callback``). A workspace server's: the agent makes
the authorization URL and alone holds its PKCE verifier; the chat server keeps which workspace,
server and user a ``state`` belongs to, so the callback hands the code to the right agent without
taking the browser's word for it. A per-user admin server's: the replica whose connection made
the URL holds the verifier; the record says which server, user and replica, so the callback is
finished there (sent on from another replica). Each record is used once, lives ten minutes, and
only so many are kept (the oldest go first). The records are in the database (the state as a
hash), so a callback may reach any replica.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from workdock.chat.store.models import PendingSignIn as Row
from workdock.chat.store.models import utcnow
from workdock.chat.store.repo import Store

TTL_S = 600.0
LIMIT = 1024


Kind = Literal["workspace", "admin"]


@dataclass(frozen=True)
class PendingSignIn:
    user_id: str
    kind: Kind
    server: str  # the server's name: in the workspace's .mcp.json, or the admin server's slug
    workspace_id: str | None = None  # kind "workspace"
    mcp_server_id: str | None = None  # kind "admin"
    replica_id: str | None = None  # kind "admin": the replica that finishes it


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


class PendingSignIns:
    def __init__(self, store: Store, ttl: float = TTL_S, limit: int = LIMIT) -> None:
        self.store = store
        self.ttl = timedelta(seconds=ttl)
        self.limit = limit

    async def count(self) -> int:
        async with self.store.sessions() as session:
            return int((await session.execute(select(func.count()).select_from(Row))).scalar_one())

    async def add(self, state: str, pending: PendingSignIn) -> None:
        now = utcnow()
        user_id = pending.user_id
        same = (
            Row.workspace_id == pending.workspace_id
            if pending.kind == "workspace"
            else Row.mcp_server_id == pending.mcp_server_id
        )

        def run(connection: Connection) -> None:
            connection.execute(delete(Row).where(Row.expires_at <= now))
            # A fresh start of the same server by the same user voids the earlier one (the agent,
            # or the replica's connection, did).
            connection.execute(
                delete(Row).where(
                    Row.user_id == user_id, Row.kind == pending.kind, same, Row.server == pending.server
                )
            )
            connection.execute(
                insert(Row).values(
                    state_hash=_hash(state),
                    user_id=user_id,
                    kind=pending.kind,
                    workspace_id=pending.workspace_id,
                    mcp_server_id=pending.mcp_server_id,
                    replica_id=pending.replica_id,
                    server=pending.server,
                    expires_at=now + self.ttl,
                )
            )
            # Bounded: the ones that would expire first go.
            extra = connection.execute(select(func.count()).select_from(Row)).scalar_one() - self.limit
            if extra > 0:
                oldest = select(Row.state_hash).order_by(Row.expires_at).limit(extra)
                connection.execute(delete(Row).where(Row.state_hash.in_(oldest)))

        await self.store.write(run)

    async def take(self, state: str, user_id: str) -> PendingSignIn | None:
        """The sign-in this state belongs to, once, and only for the user who started it."""
        statement = (
            delete(Row)
            .where(Row.state_hash == _hash(state), Row.user_id == user_id, Row.expires_at > utcnow())
            .returning(Row.kind, Row.server, Row.workspace_id, Row.mcp_server_id, Row.replica_id)
        )
        rows = await self.store.write(lambda c: c.execute(statement).all())
        if not rows:
            return None
        row = rows[0]
        kind: Kind = "admin" if row.kind == "admin" else "workspace"
        return PendingSignIn(user_id, kind, row.server, row.workspace_id, row.mcp_server_id, row.replica_id)
