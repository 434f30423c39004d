"""Each user's sign-ins to per-user admin servers, sealed in the database (table ``mcp_signins``).

A record is what the agent keeps in its vault files (tokens, client registration, revocation
endpoint, the server URL it is for), here one row per (user, server), the whole record sealed with
the project's cipher, so that every replica can use it and nobody reading the database can.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from workdock.chat.store.models import McpSignIn, utcnow
from workdock.chat.store.repo import Store
from workdock.secretbox import SecretKeyError

logger = logging.getLogger(__name__)

MAX_RECORD_BYTES = 256 * 1024  # a record is a few kilobytes; a larger one is not ours


class UserVault:
    """The SDK's storage of one user's sign-ins, by server slug (``ids`` maps a slug to its id)."""

    def __init__(self, store: Store, user_id: str, ids: Callable[[str], str | None]) -> None:
        self.store = store
        self.user_id = user_id
        self._ids = ids

    def _key(self, name: str) -> str | None:
        return self._ids(name)

    async def read(self, name: str) -> dict[str, Any] | None:
        server_id = self._key(name)
        if server_id is None:
            return None
        async with self.store.sessions() as session:
            sealed = await session.scalar(
                select(McpSignIn.record).where(
                    McpSignIn.user_id == self.user_id, McpSignIn.server_id == server_id
                )
            )
        if sealed is None or len(sealed) > MAX_RECORD_BYTES:
            return None
        try:
            record = orjson.loads(self.store.box.open(sealed))
        except (SecretKeyError, orjson.JSONDecodeError) as exc:
            logger.warning("server %s: a stored sign-in cannot be read (%s); signing in again", name, exc)
            return None
        return record if isinstance(record, dict) else None

    async def write(self, name: str, record: dict[str, Any]) -> None:
        server_id = self._key(name)
        if server_id is None:
            return  # the server was removed meanwhile: nothing to keep
        values = {
            "record": self.store.box.seal(orjson.dumps(record).decode()),
            "signed_in": bool(record.get("tokens")),
            "updated_at": utcnow(),
        }
        where = (McpSignIn.user_id == self.user_id, McpSignIn.server_id == server_id)

        def run(connection: Connection) -> None:
            if not connection.execute(update(McpSignIn).where(*where).values(**values)).rowcount:
                row = {"user_id": self.user_id, "server_id": server_id, **values}
                connection.execute(insert(McpSignIn).values(**row))

        try:
            await self.store.write(run)
        except IntegrityError:  # inserted by another replica meanwhile, or the server is gone
            await self.store.write(lambda c: c.execute(update(McpSignIn).where(*where).values(**values)))

    async def remove(self, name: str) -> None:
        server_id = self._key(name)
        if server_id is not None:
            await forget(self.store, self.user_id, server_id)


async def forget(store: Store, user_id: str, server_id: str) -> None:
    statement = delete(McpSignIn).where(McpSignIn.user_id == user_id, McpSignIn.server_id == server_id)
    await store.write(lambda c: c.execute(statement))


async def signed_in(store: Store, user_id: str) -> set[str]:
    """The ids of the servers ``user_id`` holds tokens for."""
    async with store.sessions() as session:
        rows = await session.scalars(
            select(McpSignIn.server_id).where(McpSignIn.user_id == user_id, McpSignIn.signed_in.is_(True))
        )
        return set(rows.all())


async def holders(store: Store, server_id: str) -> list[str]:
    """The users with a sign-in record (tokens or a registration) for ``server_id``."""
    async with store.sessions() as session:
        rows = await session.scalars(select(McpSignIn.user_id).where(McpSignIn.server_id == server_id))
        return list(rows.all())
