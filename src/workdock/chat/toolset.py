"""Gather a turn's tools from the three sources at once, each within its own budget."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.tools import ToolDefinition

from workdock.chat.store.models import Chat, Workspace
from workdock.chat.tools.admin import AdminServers
from workdock.chat.tools.base import Gathered, OfferedTool, Source, SourceFailure
from workdock.chat.tools.builtin import builtin_tools
from workdock.chat.tools.merge import merge
from workdock.chat.tools.workspace import AgentPool

logger = logging.getLogger(__name__)


@dataclass
class ToolSet:
    tools: dict[str, OfferedTool] = field(default_factory=dict)  # shared between turns: do not change
    failures: list[SourceFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    definitions: list[ToolDefinition] = field(default_factory=list)  # ``tools`` as the model is told

    def describe(self) -> dict[str, Any]:
        return {
            "tools": [t.describe() for t in self.tools.values()],
            "failures": [f.describe() for f in self.failures],
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class _Merged:
    key: tuple[Hashable, ...]
    tools: dict[str, OfferedTool]
    warnings: list[str]
    definitions: list[ToolDefinition]


def _merge(key: tuple[Hashable, ...], gathered: list[Gathered]) -> _Merged:
    tools, warnings = merge(*gathered)
    definitions = [
        ToolDefinition(name=t.name, parameters_json_schema=t.parameters, description=t.description)
        for t in tools.values()
    ]
    return _Merged(key, tools, warnings, definitions)


class ToolGatherer:
    def __init__(self, pool: AgentPool, admin: AdminServers | None) -> None:
        self.pool = pool
        self.admin = admin
        self._builtin: dict[str, Gathered] = {}  # workspace id → built-ins bound to its current client
        # (workspace id, admin servers used) → the last merged set. Renaming and schema building for
        # hundreds of tools cost more than the rest of a turn's own work, and the sources rarely change.
        self._merged: dict[tuple[str, bool], _Merged] = {}

    def forget(self, workspace_id: str) -> None:
        """Drop everything kept for a deleted workspace: its client, catalog and merged tool sets."""
        self.pool.forget(workspace_id)
        self._builtin.pop(workspace_id, None)
        for slot in [slot for slot in self._merged if slot[0] == workspace_id]:
            del self._merged[slot]

    async def gather(self, chat: Chat, workspace: Workspace) -> ToolSet:
        try:
            client = self.pool.client(workspace)
        except Exception as exc:  # e.g. a token stored before tokens were checked: that agent's failure
            logger.warning("workspace %s: no agent client: %r", workspace.id, exc)
            return await self._without_agent(
                chat, f"the workspace agent cannot be used: {type(exc).__name__}: {exc}"
            )
        # A linked agent that is away: its tools fail at once with the reason, no round trip.
        away = self.pool.unavailable(workspace)

        async def admin() -> Gathered:
            if self.admin is None or not chat.use_admin_servers:
                return Gathered()
            return await self.admin.gather(chat.user_id)

        async def agent() -> Gathered:
            if away is not None:
                return Gathered(failures=[SourceFailure("workspace", None, away)])
            return await self.pool.gather(workspace.id, client)

        # The shared admin catalog is in memory and built-ins are static; the agent is a round trip
        # with its own 5 s budget, and the owner's per-user admin servers wait at most a few
        # seconds for their connections (opened on demand). A source that raises is a failure,
        # never the turn's end.
        results = await asyncio.gather(admin(), agent(), return_exceptions=True)
        builtin = self._builtin.get(workspace.id)
        if builtin is None or builtin.version is not client:
            builtin = self._builtin[workspace.id] = builtin_tools(client)
        if away is not None:  # still offered (a call answers with the reason at once), but reported
            builtin = Gathered(builtin.tools, [SourceFailure("builtin", None, away)], builtin.version)
        gathered: list[Gathered] = [builtin]
        sources: tuple[Source, Source] = ("admin", "workspace")
        for source, result in zip(sources, results, strict=True):
            if isinstance(result, BaseException):
                logger.warning("tool source %s failed: %r", source, result)
                result = Gathered(
                    failures=[SourceFailure(source, None, f"{type(result).__name__}: {result}")]
                )
            gathered.append(result)
        slot = (workspace.id, bool(chat.use_admin_servers))
        key = tuple(g.version for g in gathered)
        merged = self._merged.get(slot)
        if merged is None or merged.key != key or any(g.version is None and g.tools for g in gathered):
            merged = self._merged[slot] = _merge(key, gathered)
        failures = [f for g in gathered for f in g.failures]
        for failure in failures:
            logger.info(
                "chat %s: tool source %s%s skipped: %s",
                chat.id,
                failure.source,
                f"/{failure.server}" if failure.server else "",
                failure.error,
            )
        return ToolSet(merged.tools, failures, merged.warnings, merged.definitions)

    async def _without_agent(self, chat: Chat, why: str) -> ToolSet:
        """The admin servers' tools alone; the built-ins and workspace tools fail with ``why``."""
        use = self.admin is not None and chat.use_admin_servers
        admin = await self.admin.gather(chat.user_id) if self.admin is not None and use else Gathered()
        merged = _merge((), [Gathered(), admin, Gathered()])
        failures = [
            SourceFailure("builtin", None, why),
            SourceFailure("workspace", None, why),
            *admin.failures,
        ]
        return ToolSet(merged.tools, failures, merged.warnings, merged.definitions)
