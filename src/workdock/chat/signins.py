"""Sign-ins to workspace servers begun from the web UI, waiting for their callback.

The agent makes the authorization URL and alone holds its PKCE verifier; what the chat server
keeps is which workspace, server and user a ``state`` belongs to, so the callback
(``GET /oauth/callback``) hands the code to the right agent without taking the browser's word for
it. Each record is used once, lives ten minutes, and only so many are kept (the oldest go first).
The records are in the database (the state as a hash), so a callback may reach any replica.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from workdock.chat.store.models import PendingSignIn as Row
from workdock.chat.store.models import utcnow
from workdock.chat.store.repo import Store

TTL_S = 600.0
LIMIT = 1024


@dataclass(frozen=True)
class PendingSignIn:
    user_id: str
    workspace_id: str
    server: str


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

    async def add(self, state: str, user_id: str, workspace_id: str, server: str) -> None:
        now = utcnow()

        def run(connection: Connection) -> None:
            connection.execute(delete(Row).where(Row.expires_at <= now))
            # A fresh start of the same server by the same user voids the earlier one (the agent did).
            connection.execute(
                delete(Row).where(
                    Row.user_id == user_id, Row.workspace_id == workspace_id, Row.server == server
                )
            )
            connection.execute(
                insert(Row).values(
                    state_hash=_hash(state),
                    user_id=user_id,
                    workspace_id=workspace_id,
                    server=server,
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
            .returning(Row.workspace_id, Row.server)
        )
        rows = await self.store.write(lambda c: c.execute(statement).all())
        return PendingSignIn(user_id, rows[0].workspace_id, rows[0].server) if rows else None
