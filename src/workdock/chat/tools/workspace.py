"""Workspace MCP tools: the agent's catalog, cached per workspace by ETag (a 304 costs nothing)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from workdock.agentapi import AgentClient, AgentError, CallToolResult, Elicitation, Progress, ToolInfo
from workdock.chat.store.models import Workspace
from workdock.chat.tools.base import CallReporter, Gathered, OfferedTool, SourceFailure, error_result
from workdock.link.registry import LinkRegistry

logger = logging.getLogger(__name__)

LIST_BUDGET_S = 5.0
# Requests through a link go by its transport; the URL only names the agent in httpx2's records.
LINK_BASE_URL = "http://linked-agent.invalid"


@dataclass(eq=False)  # compared by identity: it is the version of the tools it offers
class _Cached:
    etag: str
    offered: list[OfferedTool]  # built once per catalog version, not on every turn


class AgentPool:
    """One client per workspace agent (keep-alive HTTP, or the agent link), and the workspace
    tool catalogs.

    A call sends no timeout of its own: the agent applies the server's ``timeout`` from
    ``.mcp.json`` (60 s when it has none), up to the agent's ceiling of 600 s.
    """

    def __init__(self, links: LinkRegistry | None = None) -> None:
        self.links = links or LinkRegistry()
        self._clients: dict[str, tuple[tuple[str | None, ...], AgentClient]] = {}
        self._catalogs: dict[str, _Cached] = {}

    def client(self, workspace: Workspace) -> AgentClient:
        """The workspace's client; a new one when its agent's address or token changed."""
        key = (workspace.connection, workspace.agent_url, workspace.agent_token)
        entry = self._clients.get(workspace.id)
        if entry is not None and entry[0] == key:
            return entry[1]
        if workspace.linked:
            # The link authenticated the agent when it dialled; requests carry no token of their own.
            transport = self.links.transport(workspace.id, workspace.created_at)
            client = AgentClient(LINK_BASE_URL, None, transport=transport)
        else:
            assert workspace.agent_url is not None and workspace.agent_token is not None
            client = AgentClient(workspace.agent_url, workspace.agent_token)
        if entry is not None:  # another agent (or token): its catalog and the tools calling it are stale
            self._catalogs.pop(workspace.id, None)
            asyncio.get_running_loop().create_task(entry[1].aclose())
        self._clients[workspace.id] = (key, client)
        return client

    def unavailable(self, workspace: Workspace) -> str | None:
        """Why a linked workspace's agent cannot be reached now (None when it can be tried)."""
        return self.links.unavailable(workspace.id, workspace.created_at) if workspace.linked else None

    def forget(self, workspace_id: str) -> None:
        self._catalogs.pop(workspace_id, None)
        entry = self._clients.pop(workspace_id, None)
        if entry is not None:
            asyncio.get_running_loop().create_task(entry[1].aclose())

    def drop_catalog(self, workspace_id: str) -> None:
        self._catalogs.pop(workspace_id, None)

    async def aclose(self) -> None:
        clients = [entry[1] for entry in self._clients.values()]
        self._clients.clear()
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)

    async def gather(self, workspace_id: str, client: AgentClient) -> Gathered:
        cached = self._catalogs.get(workspace_id)
        try:
            listing = await asyncio.wait_for(
                client.list_tools(etag=cached.etag if cached else None, timeout=LIST_BUDGET_S), LIST_BUDGET_S
            )
        except (AgentError, TimeoutError) as exc:
            why = str(exc) if isinstance(exc, AgentError) else f"no answer within {LIST_BUDGET_S:g} s"
            return Gathered(failures=[SourceFailure("workspace", None, f"workspace agent: {why}")])
        if listing is not None:
            offered = [self._offer(workspace_id, client, tool) for tool in listing.tools]
            cached = self._catalogs[workspace_id] = _Cached(listing.version, offered)
        assert cached is not None  # a 304 only answers an ETag we sent
        return Gathered(tools=cached.offered, version=cached)

    def _offer(self, workspace_id: str, client: AgentClient, tool: ToolInfo) -> OfferedTool:
        async def call(arguments: dict[str, Any], reporter: CallReporter) -> CallToolResult:
            try:
                return await _streamed_call(client, tool.name, arguments, reporter)
            except AgentError as exc:
                if exc.status == 404:  # the catalog moved on: fetch it afresh next turn
                    self.drop_catalog(workspace_id)
                return error_result(_call_error(tool.name, exc))

        schema = tool.input_schema or {
            "type": "object",
            "properties": tool.schema_,
            "required": tool.required,
        }
        return OfferedTool(
            name=tool.name,
            source="workspace",
            server=tool.server_name,
            source_name=tool.name,
            description=tool.description,
            parameters=schema,
            call=call,
            read_only=(tool.annotations or {}).get("readOnlyHint") is True,
        )


async def _streamed_call(
    client: AgentClient, name: str, arguments: dict[str, Any], reporter: CallReporter
) -> CallToolResult:
    """The call streamed from the agent: progress onto the card, requests for input to the user
    (each answered in a task of its own, so the stream is read on while the user thinks)."""
    relays: set[asyncio.Task[None]] = set()
    try:
        async with aclosing(client.call_tool_events(name, arguments)) as events:
            async for event in events:
                if isinstance(event, Progress):
                    reporter.progress(event.progress, event.total, event.message)
                elif isinstance(event, Elicitation):
                    relay = asyncio.ensure_future(_relay(client, event, reporter))
                    relays.add(relay)
                    relay.add_done_callback(relays.discard)
                else:
                    return event
    finally:
        for relay in relays:  # the call is over: a question still open has no one to ask for
            relay.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
    raise AgentError(0, "the agent's answer ended before the tool's result")


async def _relay(client: AgentClient, asked: Elicitation, reporter: CallReporter) -> None:
    answer = await reporter.ask(asked.describe())
    try:
        await client.answer_elicitation(asked.id, answer.action, answer.content)
    except AgentError as exc:  # the call ended meanwhile (404), or the agent is gone: nothing to do
        logger.info("answer to request for input %s not taken: %s", asked.id, exc)


def _call_error(name: str, exc: AgentError) -> str:
    if exc.status == 0:
        return f"tool {name} failed: the workspace agent is unreachable ({exc.detail or exc.message})"
    if exc.status == 504:
        return f"tool {name} timed out: {exc.message}"
    if exc.status == 404:
        return f"tool {name} is no longer offered by the workspace: {exc.message}"
    return f"tool {name} failed (agent answered {exc.status}): {exc}"
