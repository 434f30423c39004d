"""Which agents are linked to the service, and the one way to reach each: ``transport(id)``.

The registry holds the links that landed on this replica (a newer link replaces an older one) and
what is known of each for the status API. A link can land on any replica of the service: the
directory (the chat server's, backed by its database) says where each one is, and a request for a
workspace whose link another replica holds is relayed through that replica (link/relay.py). The
transport alone knows which way a request goes: nothing above it changes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx2

from workdock.agentapi import AgentUnavailable
from workdock.link.relay import RelayClient
from workdock.link.session import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_REPLACED,
    PING_INTERVAL,
    SILENCE_LIMIT,
    LinkClosed,
    Session,
    Socket,
)
from workdock.link.transport import exchange

logger = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class LinkState:
    """What is known of a workspace's link."""

    session: Session | None = None
    connected_since: datetime | None = None
    disconnected_since: datetime | None = None
    last_error: str | None = None
    agent_version: str | None = None
    peer: str | None = None
    token_hash: str | None = None  # of the token the link was opened with


@dataclass(frozen=True)
class Elsewhere:
    """A workspace's link as the service knows it, when it is not held here: ``address`` is where
    the replica holding it is reached (None: no live replica holds it)."""

    address: str | None
    state: LinkState


class Directory(Protocol):
    """Where every workspace's link is, across the replicas of the service."""

    def elsewhere(self, workspace_id: str) -> Elsewhere | None: ...

    async def linked(self, workspace_id: str, state: LinkState) -> None: ...

    async def unlinked(self, workspace_id: str, state: LinkState) -> None: ...


class _Routed(httpx2.AsyncBaseTransport):
    """Requests for one workspace: over its link when this replica holds it, else relayed
    through the replica that does, else refused at once with the reason."""

    def __init__(self, registry: LinkRegistry, workspace_id: str, created_at: datetime | None) -> None:
        self._registry = registry
        self._workspace_id = workspace_id
        self._created_at = created_at

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        registry, workspace_id = self._registry, self._workspace_id
        session = registry.local_session(workspace_id)
        if session is not None:
            return await exchange(session, request)
        held = registry.held_elsewhere(workspace_id)
        if held is not None and registry.relay is not None:
            return await registry.relay.send(held, workspace_id, request)
        raise AgentUnavailable(registry.unavailable(workspace_id, self._created_at) or "not connected")

    async def aclose(self) -> None:
        """Nothing to close: the links and the relay's pool belong to the registry."""


class LinkRegistry:
    def __init__(
        self,
        *,
        ping_interval: float = PING_INTERVAL,
        silence_limit: float = SILENCE_LIMIT,
        directory: Directory | None = None,
        relay: RelayClient | None = None,
    ) -> None:
        self.ping_interval = ping_interval
        self.silence_limit = silence_limit
        self.directory = directory
        self.relay = relay
        self._started = _now()
        self._states: dict[str, LinkState] = {}

    # ---- the way to an agent ---------------------------------------------------------------------

    def transport(self, workspace_id: str, created_at: datetime | None = None) -> httpx2.AsyncBaseTransport:
        """The transport for workspace ``workspace_id``'s agent, whichever link it has (here or on
        another replica) when a request is sent; while it has none, requests fail at once with the
        reason."""
        return _Routed(self, workspace_id, created_at)

    def local_session(self, workspace_id: str) -> Session | None:
        state = self._states.get(workspace_id)
        return state.session if state is not None else None

    def held_elsewhere(self, workspace_id: str) -> str | None:
        """The address of the live replica that holds the workspace's link, if not this one."""
        elsewhere = self.directory.elsewhere(workspace_id) if self.directory is not None else None
        return elsewhere.address if elsewhere is not None else None

    def _known(self, workspace_id: str) -> tuple[LinkState | None, bool]:
        """What is known of the link, here or elsewhere, and whether it is up."""
        state = self._states.get(workspace_id)
        if state is not None and state.session is not None:
            return state, True
        elsewhere = self.directory.elsewhere(workspace_id) if self.directory is not None else None
        if elsewhere is not None and (elsewhere.address is not None or state is None):
            return elsewhere.state, elsewhere.address is not None
        return state, False

    def unavailable(self, workspace_id: str, created_at: datetime | None = None) -> str | None:
        """Why the workspace's agent cannot be reached now, or None when its link is up."""
        state, up = self._known(workspace_id)
        if up:
            return None
        since = self._disconnected_since(state, created_at)
        why = f"the workspace agent is not connected, since {_when(since)}"
        if state is not None and state.last_error:
            why += f" ({state.last_error})"
        elif state is None:
            why += " (it has not dialled this server yet: run the workspace's connect command)"
        return why

    def status(self, workspace_id: str, created_at: datetime | None = None) -> dict[str, Any]:
        known, connected = self._known(workspace_id)
        state = known or LinkState()
        return {
            "connection": "link",
            "connected": connected,
            "connected_since": state.connected_since.isoformat()
            if connected and state.connected_since
            else None,
            "disconnected_since": None
            if connected
            else self._disconnected_since(known, created_at).isoformat(),
            "last_error": state.last_error,
            "agent_version": state.agent_version,
            "peer": state.peer,
        }

    def _disconnected_since(self, state: LinkState | None, created_at: datetime | None) -> datetime:
        if state is not None and state.disconnected_since is not None:
            return state.disconnected_since
        if created_at is not None:
            created = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
            return max(created, self._started)
        return self._started

    # ---- links as they come and go ---------------------------------------------------------------

    async def serve(
        self,
        workspace_id: str,
        socket: Socket,
        *,
        peer: str | None,
        agent_version: str | None,
        token_hash: str | None = None,
    ) -> None:
        """Carry a newly accepted link until it ends; it replaces the workspace's previous one, here
        or (through the directory, which tells the replica that held it) elsewhere."""
        session = Session(socket, ping_interval=self.ping_interval, silence_limit=self.silence_limit)
        state = self._states.setdefault(workspace_id, LinkState())
        previous = state.session
        state.session = session
        state.connected_since = _now()
        state.disconnected_since = None
        state.last_error = None
        state.agent_version = agent_version
        state.peer = peer
        state.token_hash = token_hash
        if previous is not None:
            logger.info("workspace %s: a new link from %s replaces the previous one", workspace_id, peer)
            await previous.close(CLOSE_REPLACED, "another agent linked for this workspace")
        logger.info("workspace %s: agent %s linked from %s", workspace_id, agent_version or "?", peer)
        await self._tell(self.directory.linked if self.directory else None, workspace_id, state)
        outcome = await session.run()
        if state.session is session:  # not replaced: the workspace is now without a link
            state.session = None
            state.disconnected_since = _now()
            state.last_error = _describe(outcome)
            logger.info("workspace %s: link closed: %s", workspace_id, state.last_error or "normally")
            await self._tell(self.directory.unlinked if self.directory else None, workspace_id, state)

    async def _tell(self, hook: Any, workspace_id: str, state: LinkState) -> None:
        if hook is None:
            return
        try:
            await asyncio.shield(hook(workspace_id, state))
        except Exception as exc:  # the link works without it; other replicas learn at their next look
            logger.warning("workspace %s: cannot record where its link is: %r", workspace_id, exc)

    async def disconnect(self, workspace_id: str, code: int, reason: str) -> None:
        """Close the workspace's link, if it has one here (token rotated, workspace deleted,
        replaced by a link to another replica)."""
        state = self._states.get(workspace_id)
        if state is not None and state.session is not None:
            await state.session.close(code, reason)

    def token_hash(self, workspace_id: str) -> str | None:
        """The hash of the token the workspace's link here was opened with (None: no link here)."""
        state = self._states.get(workspace_id)
        return state.token_hash if state is not None and state.session is not None else None

    def linked_here(self) -> list[str]:
        return [w for w, s in self._states.items() if s.session is not None]

    def forget(self, workspace_id: str) -> None:
        self._states.pop(workspace_id, None)

    async def aclose(self) -> None:
        """Server shutdown: every link is closed (the agents redial the next server)."""
        sessions = [s.session for s in self._states.values() if s.session is not None]
        await asyncio.gather(
            *(s.close(CLOSE_GOING_AWAY, "the server is shutting down", wait=2) for s in sessions),
            return_exceptions=True,
        )
        if self.relay is not None:
            await self.relay.aclose()


def _describe(outcome: LinkClosed) -> str | None:
    if outcome.code in (CLOSE_NORMAL, CLOSE_GOING_AWAY) and not outcome.reason:
        return None
    return f"{outcome.reason or 'the connection was lost'} ({outcome.code})"
