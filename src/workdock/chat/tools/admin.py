"""Admin MCP servers: connected by the chat server itself through the same hub the agent uses.

Servers with static ``headers`` share one hub; per-user OAuth servers (``auth: "oauth"``) are each
user's own sessions (:mod:`workdock.chat.tools.user_servers`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import mcp_types as types

from workdock.agentapi import CallToolResult
from workdock.chat.store.models import McpServer
from workdock.chat.tools.base import CallFn, CallReporter, Gathered, OfferedTool, SourceFailure, error_result
from workdock.chat.tools.user_servers import UserServers
from workdock.mcp.config import ServerSpec
from workdock.mcp.content import result_to_wire
from workdock.mcp.hooks import CallHooks
from workdock.mcp.hub import CallTimeout, Hub, HubError, ServerUnavailable, ToolNotFound
from workdock.mcp.questions import describe_request

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolPolicy:
    allow: frozenset[str]
    deny: frozenset[str]

    def admits(self, tool: str) -> bool:
        # A non-empty allow list alone decides; otherwise the deny list removes tools.
        return tool in self.allow if self.allow else tool not in self.deny


def spec_for(row: McpServer) -> ServerSpec:
    return ServerSpec(
        name=row.slug,
        transport="sse" if row.transport == "sse" else "http",
        url=row.url,
        headers=dict(row.headers or {}) or None,
    )


class AdminServers:
    """Owns the hub of admin servers; ``apply`` after every change to the mcp_servers table."""

    def __init__(self, hub: Hub, call_timeout: float, users: UserServers | None = None) -> None:
        self.hub = hub
        self.call_timeout = call_timeout
        self.users = users
        self._policies: dict[str, ToolPolicy] = {}
        self._policy_version = 0
        self._offered: tuple[tuple[int, int], list[OfferedTool]] | None = (
            None  # by (catalog, policies) version
        )
        self._applying = asyncio.Lock()

    async def reload(self, read: Callable[[], Awaitable[Sequence[McpServer]]]) -> None:
        """Apply the servers as ``read`` finds them now (after a change here or on another
        replica). One reload at a time, each reading afresh, so the last one applies the newest."""
        async with self._applying:
            await self.apply(await read())

    async def apply(self, rows: Sequence[McpServer]) -> None:
        enabled = [row for row in rows if row.enabled]
        self._policies = {
            row.slug: ToolPolicy(frozenset(row.allow_tools or ()), frozenset(row.deny_tools or ()))
            for row in enabled
        }
        self._policy_version += 1
        await self.hub.apply([spec_for(row) for row in enabled if row.auth != "oauth"])
        if self.users is not None:
            await self.users.apply([row for row in rows if row.auth == "oauth"])

    async def statuses(self, user_id: str) -> dict[str, dict[str, Any]]:
        """Each server's state; a per-user server's is ``user_id``'s own."""
        shared = {
            s.name: {"state": s.state, "tool_count": s.tool_count, "error": s.error}
            for s in self.hub.statuses()
        }
        own = await self.users.statuses(user_id) if self.users is not None else {}
        return {**shared, **own}

    async def gather(self, user_id: str) -> Gathered:
        """The shared servers' admitted tools and those of ``user_id``'s own sessions."""
        shared = self._gather_shared()
        if self.users is None or not self.users.rows:
            return shared
        own = await self.users.gather(user_id, self._offer_own)
        return Gathered(
            [*shared.tools, *own.tools], [*shared.failures, *own.failures], (shared.version, own.version)
        )

    def _offer_own(self, hub: Hub, user_id: str) -> list[OfferedTool]:
        users = self.users
        assert users is not None

        async def hub_of() -> Hub | None:
            return await users.hub_for_call(user_id)

        return self._offer(hub, hub_of)

    def _gather_shared(self) -> Gathered:
        """The ready servers' admitted tools (instant: the hub keeps its catalog current)."""
        gathered = Gathered()
        for status in self.hub.statuses():
            if status.state != "ready":
                why = status.error or status.state
                gathered.failures.append(SourceFailure("admin", status.name, f"{status.state}: {why}"))
        catalog = self.hub.catalog
        version = (catalog.version, self._policy_version)
        if self._offered is None or self._offered[0] != version:
            shared = self.hub

            async def hub_of() -> Hub | None:
                return shared

            self._offered = (version, self._offer(shared, hub_of))
        gathered.tools, gathered.version = self._offered[1], ("admin", *version)
        return gathered

    def _offer(self, hub: Hub, hub_of: Callable[[], Awaitable[Hub | None]]) -> list[OfferedTool]:
        return [
            OfferedTool(
                name=entry.name,
                source="admin",
                server=entry.server,
                source_name=entry.name,
                description=entry.tool.description or "",
                parameters=entry.tool.input_schema or {"type": "object", "properties": {}},
                call=self._caller(entry.name, hub_of),
                read_only=bool(entry.tool.annotations and entry.tool.annotations.read_only_hint),
            )
            for entry in hub.catalog.tools
            if (policy := self._policies.get(entry.server)) is not None and policy.admits(entry.original_name)
        ]

    def _caller(self, name: str, hub_of: Callable[[], Awaitable[Hub | None]]) -> CallFn:
        async def call(arguments: dict[str, Any], reporter: CallReporter) -> CallToolResult:
            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                reporter.progress(progress, total, message)

            async def ask(params: types.ElicitRequestParams) -> types.ElicitResult:
                answer = await reporter.ask(describe_request(params))
                return types.ElicitResult(action=answer.action, content=answer.content)

            hooks = CallHooks(on_progress, ask)
            hub = await hub_of()  # a per-user server's: the chat owner's session, opened again if idle
            if hub is None:
                return error_result(f"tool {name} failed: the chat server is shutting down")
            try:
                return result_to_wire(await hub.call(name, arguments, self.call_timeout, hooks))
            except HubError as exc:
                if isinstance(exc, CallTimeout):
                    what = "timed out"
                elif isinstance(exc, ServerUnavailable):
                    what = "failed: the server is unavailable"
                elif isinstance(exc, ToolNotFound):
                    what = "is no longer offered"
                else:  # a protocol error, a result over the size limit: the message says which
                    what = "failed"
                return error_result(f"tool {name} {what}: {exc.message}")

        return call
