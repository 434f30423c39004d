"""Per-user admin servers: each user's own connections, with their own OAuth sign-in.

An admin server marked ``auth: "oauth"`` is not connected once for everybody: each user signs in
with their own account, and a chat's tools of that server are those of its owner's session. A
user's session is a :class:`Hub` of its own (the agent's code: connections, catalog, the SDK's
OAuth flow) over a :class:`UserVault`, so its tokens live sealed in the database and every replica
can use them. Sessions are opened on demand (a turn, the tools listing, a sign-in), hold only the
servers the user has signed in to or is signing in to, are closed when idle, and only so many are
kept (the least recently used goes first).

A sign-in started here waits here: the SDK's flow that holds the PKCE verifier is in this
replica's connection, and the callback is sent on to it from any other replica.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup

from workdock.agentapi import ServerStatus
from workdock.chat import user_tokens
from workdock.chat.store.models import McpServer
from workdock.chat.store.repo import Store
from workdock.chat.tools.base import Gathered, OfferedTool, SourceFailure
from workdock.mcp.config import OAuthSettings, ServerSpec
from workdock.mcp.hub import Hub
from workdock.mcp.oauth import RESTART_TIMEOUT, SignInError, Vault, revoke

logger = logging.getLogger(__name__)

IDLE_S = 900.0  # a session unused this long is closed (longer than a pending sign-in lives)
MAX_SESSIONS = 64
SETTLE_S = 10.0  # how long a turn waits for a session's connections to come up

MakeHub = Callable[[Vault], Hub]
OfferTools = Callable[[Hub, str], list[OfferedTool]]  # a hub's admitted tools, calls routed by user


def oauth_settings(row: McpServer, callback_url: str) -> OAuthSettings:
    oauth = row.oauth or {}
    return OAuthSettings(
        client_id=oauth.get("client_id"),
        client_secret=oauth.get("client_secret"),
        scopes=tuple(oauth.get("scopes") or ()),
        redirect_uri=callback_url,
    )


# How a user signs in to their own connection to server {name} (its status and the log).
USER_SIGN_IN_HINT = "Sign in on its row in the tools panel, or /signin {name} in workdock chat"


def sign_in_reason(row: McpServer) -> str:
    return (
        f"needs_auth: sign in to {row.slug} with your own account (Sign in in the tools panel, "
        f"or POST /api/v0/mcp-servers/{row.id}/signin and open its authorization_url)"
    )


@dataclass
class _Session:
    user_id: str
    vault: user_tokens.UserVault
    hub: Hub | None = None
    signing: set[str] = field(default_factory=set)  # slugs whose sign-in was started here
    last_used: float = field(default_factory=time.monotonic)
    ready: anyio.Event = field(default_factory=anyio.Event)
    stop: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)
    offered: tuple[tuple[int, int], list[OfferedTool]] | None = None

    def touch(self) -> None:
        self.last_used = time.monotonic()


class UserServers:
    def __init__(
        self,
        store: Store,
        make_hub: MakeHub,
        callback_url: str,
        *,
        idle_s: float = IDLE_S,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.store = store
        self._make_hub = make_hub
        self.callback_url = callback_url
        self.idle_s = idle_s
        self.max_sessions = max_sessions
        self.rows: dict[str, McpServer] = {}  # enabled per-user servers by slug
        self._ids: dict[str, str] = {}  # every per-user server's slug → id (enabled or not)
        self._version = 0  # of ``rows``: the offered tools are made again when it changes
        self._sessions: dict[str, _Session] = {}
        self._opening = anyio.Lock()
        self._task_group: TaskGroup | None = None

    async def __aenter__(self) -> UserServers:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._close_idle)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._task_group is not None
        with anyio.CancelScope(shield=True):
            for session in list(self._sessions.values()):
                await self._close(session)
        self._task_group.cancel_scope.cancel()
        return await self._task_group.__aexit__(exc_type, exc, tb)

    # ---- the servers ----------------------------------------------------------------------------

    def spec(self, row: McpServer) -> ServerSpec:
        return ServerSpec(
            name=row.slug,
            transport="sse" if row.transport == "sse" else "http",
            url=row.url,
            headers=dict(row.headers or {}) or None,
            oauth=oauth_settings(row, self.callback_url),
        )

    async def apply(self, rows: Sequence[McpServer]) -> None:
        """The per-user servers now (all of them, enabled or not); every open session follows."""
        self._ids = {row.slug: row.id for row in rows}
        self.rows = {row.slug: row for row in rows if row.enabled}
        self._version += 1
        for session in list(self._sessions.values()):
            await self._sync(session)

    async def _sync(self, session: _Session, drop: str | None = None) -> None:
        """Connect the servers the user holds tokens for (any replica may have changed that) and
        those they are signing in to here; nothing else."""
        if session.hub is None:
            return
        ids = await user_tokens.signed_in(self.store, session.user_id)
        session.signing &= set(self.rows)
        wanted = [
            row
            for slug, row in self.rows.items()
            if slug != drop and (row.id in ids or slug in session.signing)
        ]
        await session.hub.apply([self.spec(row) for row in wanted])

    # ---- sessions -------------------------------------------------------------------------------

    async def session(self, user_id: str) -> _Session:
        """The user's open session, opened now if it is not."""
        async with self._opening:
            session = self._sessions.get(user_id)
            if session is None:
                await self.trim(room=1)
                # The ids as they are at each use: servers come and go while a session is open.
                vault = user_tokens.UserVault(self.store, user_id, lambda name: self._ids.get(name))
                session = _Session(user_id, vault)
                self._sessions[user_id] = session
                assert self._task_group is not None, "use as `async with UserServers(...)`"
                self._task_group.start_soon(self._own, session, name=f"user servers of {user_id}")
                await session.ready.wait()
                await self._sync(session)
        session.touch()
        return session

    async def _own(self, session: _Session) -> None:
        """A session's owner task: its hub is entered and left here alone (anyio wants that)."""
        try:
            async with self._make_hub(session.vault) as hub:
                session.hub = hub
                session.ready.set()
                await session.stop.wait()
        finally:
            session.hub = None
            session.ready.set()
            session.done.set()

    async def _close(self, session: _Session) -> None:
        if self._sessions.get(session.user_id) is session:
            del self._sessions[session.user_id]
        session.stop.set()
        await session.done.wait()

    async def trim(self, room: int = 0) -> None:
        """Close the sessions idle too long, then the least recently used ones over the bound
        (leaving ``room`` for sessions about to open)."""
        now = time.monotonic()
        for session in [s for s in self._sessions.values() if now - s.last_used > self.idle_s]:
            logger.info("user %s: per-user MCP connections closed (idle)", session.user_id)
            await self._close(session)
        while self._sessions and len(self._sessions) + room > self.max_sessions:
            await self._close(min(self._sessions.values(), key=lambda s: s.last_used))

    async def _close_idle(self) -> None:
        while True:
            await anyio.sleep(min(60.0, self.idle_s / 4))
            await self.trim()

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    # ---- what a user sees -----------------------------------------------------------------------

    async def _current(self, user_id: str) -> _Session | None:
        """The user's session if they need one (an open one, or tokens to connect with)."""
        if not self.rows:
            return None
        session = self._sessions.get(user_id)
        if session is None:
            held = await user_tokens.signed_in(self.store, user_id)
            if not any(row.id in held for row in self.rows.values()):
                return None  # nothing to connect: no connection is made for somebody not signed in
            session = await self.session(user_id)
        session.touch()
        return session

    async def statuses(self, user_id: str) -> dict[str, dict[str, Any]]:
        """The user's own state of each per-user server (``needs_auth`` until they sign in)."""
        session = await self._current(user_id)
        hub = session.hub if session is not None else None
        found = {s.name: s for s in hub.statuses()} if hub is not None else {}
        return {slug: _status(row, found.get(slug)) for slug, row in self.rows.items()}

    async def sign_ins(self, user_id: str) -> list[dict[str, Any]]:
        """The user's own sign-in to each per-user server, as ``GET /chats/{id}/tools`` shows it."""
        statuses = await self.statuses(user_id)
        return [
            {
                "server": slug,
                "server_id": row.id,
                "state": statuses[slug]["state"],
                "error": statuses[slug]["error"],
            }
            for slug, row in self.rows.items()
        ]

    async def gather(self, user_id: str, offer: OfferTools) -> Gathered:
        """The tools of the user's own sessions; each other server is a failure saying why."""
        gathered = Gathered()
        session = await self._current(user_id)
        hub = session.hub if session is not None else None
        if session is not None and hub is not None:
            await hub.wait_until_settled(SETTLE_S)
        found = {s.name: s for s in hub.statuses()} if hub is not None else {}
        for slug, row in self.rows.items():
            status = _status(row, found.get(slug))
            if status["state"] != "ready":
                gathered.failures.append(SourceFailure("admin", slug, status["error"], server_id=row.id))
        if session is None or hub is None:
            gathered.version = ("user", user_id, None)
            return gathered
        version = (hub.catalog.version, self._version)
        if session.offered is None or session.offered[0] != version:
            session.offered = (version, offer(hub, user_id))
        gathered.tools = session.offered[1]
        gathered.version = ("user", user_id, id(session), *version)
        return gathered

    async def hub_for_call(self, user_id: str) -> Hub | None:
        session = await self.session(user_id)
        return session.hub

    # ---- signing in and out ---------------------------------------------------------------------

    async def start_sign_in(self, user_id: str, row: McpServer, timeout: float = RESTART_TIMEOUT) -> str:
        """The authorization URL of the user's sign-in to ``row`` (its redirect URI is the chat
        server's callback). ``SignInError`` 409 when signed in already, or when the server cannot
        be reached now (its state, as with a workspace's agent, not the request's fault)."""
        session = await self.session(user_id)
        hub = session.hub
        if hub is None:
            raise SignInError(409, "the chat server is shutting down")
        waiting = row.slug in hub.server_names and _state(hub, row.slug) == "needs_auth"
        if row.slug not in hub.server_names:
            session.signing.add(row.slug)
            await self._sync(session)
        if waiting:  # an earlier sign-in's URL is waiting: void it, and start afresh
            return await hub.restart_sign_in(row.slug, self.callback_url)
        with anyio.move_on_after(timeout):
            while True:
                status = next((s for s in hub.statuses() if s.name == row.slug), None)
                if status is not None and status.state == "needs_auth" and status.authorization_url:
                    return status.authorization_url
                if status is not None and status.state == "ready":
                    raise SignInError(409, f"you are signed in to {row.slug} already: sign out first")
                if status is not None and status.state == "failed":
                    raise SignInError(409, f"{row.slug} cannot be reached: {status.error}")
                await hub.wait_for_change()
        raise SignInError(409, f"{row.slug} did not ask for a sign-in within {timeout:g} s")

    async def finish_sign_in(self, user_id: str, slug: str, code: str, state: str, iss: str | None) -> None:
        """Hand the code to the flow waiting in this replica (``SignInError`` if none can take it)."""
        session = self._sessions.get(user_id)
        hub = session.hub if session is not None else None
        if session is None or hub is None or slug not in hub.server_names:
            raise SignInError(409, "this sign-in is no longer waiting: click Sign in again")
        session.touch()
        hub.deliver_auth(slug, code, state, iss)

    async def wait_signed_in(self, user_id: str, slug: str, timeout: float) -> ServerStatus | None:
        """The server's status once its sign-in is done (ready or failed), or None after ``timeout``."""
        session = self._sessions.get(user_id)
        hub = session.hub if session is not None else None
        if hub is None:
            return None
        with anyio.move_on_after(timeout):
            while True:
                status = next((s for s in hub.statuses() if s.name == slug), None)
                if status is not None and status.state == "ready" and session is not None:
                    # Signed in: from now on the stored tokens keep it connected, so a sign-out
                    # through another replica closes it here too.
                    session.signing.discard(slug)
                if status is None or status.state in ("ready", "failed"):
                    return status
                await hub.wait_for_change()
        return None

    async def sign_out(self, user_id: str, row: McpServer) -> None:
        """Close the user's connection to ``row``, revoke their tokens where the server offers
        revocation, and forget them."""
        session = self._sessions.get(user_id)
        if session is not None:
            session.signing.discard(row.slug)
            await self._sync(session, drop=row.slug)
        vault = user_tokens.UserVault(self.store, user_id, {row.slug: row.id}.get)
        await revoke(vault, row.slug, oauth_settings(row, self.callback_url))

    async def forget_server(self, row: McpServer) -> None:
        """A per-user server being deleted: every user's sign-in to it is revoked and forgotten."""
        for user_id in await user_tokens.holders(self.store, row.id):
            await self.sign_out(user_id, row)


def _state(hub: Hub, slug: str) -> str | None:
    return next((s.state for s in hub.statuses() if s.name == slug), None)


def _status(row: McpServer, status: ServerStatus | None) -> dict[str, Any]:
    if status is None or status.state == "needs_auth":
        return {"state": "needs_auth", "tool_count": 0, "error": sign_in_reason(row)}
    return {
        "state": status.state,
        "tool_count": status.tool_count,
        "error": f"{status.state}: {status.error or status.state}" if status.state != "ready" else None,
    }
