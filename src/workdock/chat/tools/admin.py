"""Admin MCP servers: connected by the chat server itself through the same hub the agent uses."""

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

    def __init__(self, hub: Hub, call_timeout: float) -> None:
        self.hub = hub
        self.call_timeout = call_timeout
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
        await self.hub.apply([spec_for(row) for row in enabled])

    def statuses(self) -> dict[str, dict[str, Any]]:
        return {
            s.name: {"state": s.state, "tool_count": s.tool_count, "error": s.error}
            for s in self.hub.statuses()
        }

    def gather(self) -> Gathered:
        """The ready servers' admitted tools (instant: the hub keeps its catalog current)."""
        gathered = Gathered()
        for status in self.hub.statuses():
            if status.state != "ready":
                why = status.error or status.state
                gathered.failures.append(SourceFailure("admin", status.name, f"{status.state}: {why}"))
        catalog = self.hub.catalog
        version = (catalog.version, self._policy_version)
        if self._offered is None or self._offered[0] != version:
            offered = [
                OfferedTool(
                    name=entry.name,
                    source="admin",
                    server=entry.server,
                    source_name=entry.name,
                    description=entry.tool.description or "",
                    parameters=entry.tool.input_schema or {"type": "object", "properties": {}},
                    call=self._caller(entry.name),
                    read_only=bool(entry.tool.annotations and entry.tool.annotations.read_only_hint),
                )
                for entry in catalog.tools
                if (policy := self._policies.get(entry.server)) is not None
                and policy.admits(entry.original_name)
            ]
            self._offered = (version, offered)
        gathered.tools, gathered.version = self._offered[1], ("admin", *version)
        return gathered

    def _caller(self, name: str) -> CallFn:
        async def call(arguments: dict[str, Any], reporter: CallReporter) -> CallToolResult:
            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                reporter.progress(progress, total, message)

            async def ask(params: types.ElicitRequestParams) -> types.ElicitResult:
                answer = await reporter.ask(describe_request(params))
                return types.ElicitResult(action=answer.action, content=answer.content)

            hooks = CallHooks(on_progress, ask)
            try:
                return result_to_wire(await self.hub.call(name, arguments, self.call_timeout, hooks))
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
