"""Which agents are linked to this server, and the one way to reach each: ``transport(id)``.

The registry holds each workspace's live link (a newer link replaces an older one) and what is
known of its connection for the status API. It is the one object that answers "a transport for
workspace X"; the transport alone knows the way a request goes, so a relay to a link held by
another server process can later be one more kind of transport behind the same call.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2

from workdock.agentapi import AgentUnavailable
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
from workdock.link.transport import LinkTransport

logger = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class LinkState:
    """What is known of a workspace's link (in this server process)."""

    session: Session | None = None
    connected_since: datetime | None = None
    disconnected_since: datetime | None = None
    last_error: str | None = None
    agent_version: str | None = None
    peer: str | None = None


class LinkRegistry:
    def __init__(self, *, ping_interval: float = PING_INTERVAL, silence_limit: float = SILENCE_LIMIT) -> None:
        self.ping_interval = ping_interval
        self.silence_limit = silence_limit
        self._started = _now()
        self._states: dict[str, LinkState] = {}

    # ---- the way to an agent ---------------------------------------------------------------------

    def transport(self, workspace_id: str, created_at: datetime | None = None) -> httpx2.AsyncBaseTransport:
        """The transport for workspace ``workspace_id``'s agent, whichever link it has when a
        request is sent; while it has none, requests fail at once with the reason."""

        def current() -> Session:
            state = self._states.get(workspace_id)
            if state is None or state.session is None:
                raise AgentUnavailable(self.unavailable(workspace_id, created_at) or "not connected")
            return state.session

        return LinkTransport(current)

    def unavailable(self, workspace_id: str, created_at: datetime | None = None) -> str | None:
        """Why the workspace's agent cannot be reached now, or None when its link is up."""
        state = self._states.get(workspace_id)
        if state is not None and state.session is not None:
            return None
        since = self._disconnected_since(state, created_at)
        why = f"the workspace agent is not connected, since {_when(since)}"
        if state is not None and state.last_error:
            why += f" ({state.last_error})"
        elif state is None:
            why += " (it has not dialled this server yet: run the workspace's connect command)"
        return why

    def status(self, workspace_id: str, created_at: datetime | None = None) -> dict[str, Any]:
        state = self._states.get(workspace_id) or LinkState()
        connected = state.session is not None
        return {
            "connection": "link",
            "connected": connected,
            "connected_since": state.connected_since.isoformat()
            if connected and state.connected_since
            else None,
            "disconnected_since": None
            if connected
            else self._disconnected_since(self._states.get(workspace_id), created_at).isoformat(),
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
        self, workspace_id: str, socket: Socket, *, peer: str | None, agent_version: str | None
    ) -> None:
        """Carry a newly accepted link until it ends; it replaces the workspace's previous one."""
        session = Session(socket, ping_interval=self.ping_interval, silence_limit=self.silence_limit)
        state = self._states.setdefault(workspace_id, LinkState())
        previous = state.session
        state.session = session
        state.connected_since = _now()
        state.disconnected_since = None
        state.agent_version = agent_version
        state.peer = peer
        if previous is not None:
            logger.info("workspace %s: a new link from %s replaces the previous one", workspace_id, peer)
            await previous.close(CLOSE_REPLACED, "another agent linked for this workspace")
        logger.info("workspace %s: agent %s linked from %s", workspace_id, agent_version or "?", peer)
        outcome = await session.run()
        if state.session is session:  # not replaced: the workspace is now without a link
            state.session = None
            state.disconnected_since = _now()
            state.last_error = _describe(outcome)
            logger.info("workspace %s: link closed: %s", workspace_id, state.last_error or "normally")

    async def disconnect(self, workspace_id: str, code: int, reason: str) -> None:
        """Close the workspace's link, if it has one (token rotated, workspace deleted)."""
        state = self._states.get(workspace_id)
        if state is not None and state.session is not None:
            await state.session.close(code, reason)

    def forget(self, workspace_id: str) -> None:
        self._states.pop(workspace_id, None)

    async def aclose(self) -> None:
        """Server shutdown: every link is closed (the agents redial the next server)."""
        sessions = [s.session for s in self._states.values() if s.session is not None]
        await asyncio.gather(
            *(s.close(CLOSE_GOING_AWAY, "the server is shutting down", wait=2) for s in sessions),
            return_exceptions=True,
        )


def _describe(outcome: LinkClosed) -> str | None:
    if outcome.code in (CLOSE_NORMAL, CLOSE_GOING_AWAY) and not outcome.reason:
        return None
    return f"{outcome.reason or 'the connection was lost'} ({outcome.code})"
