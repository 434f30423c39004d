"""The hub's catalog served as one MCP server (the ``mcp`` SDK's low-level server).

Any MCP client (Claude Code, Cursor, VS Code, the SDK's ``Client``) sees every ready
server's tools as ``server__tool``, their resources, templates and prompts, and is told
when they change. With ``only`` one server is fronted under its own names.

A call goes through :meth:`Hub.call`, so results, timeouts and a server that is not ready
are handled as for ``call-tool``. The client's progress token gets the upstream's progress,
its ``notifications/cancelled`` cancels the handler (and the SDK then cancels the upstream
request), and an upstream's request for input is put to the client when it can be asked: a
handshake-era client is sent ``elicitation/create`` on the call's stream, a 2026-07-28 client
is answered ``input_required`` and retries with its answer (:mod:`workdock.mcp.input_relay`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from mcp.server.models import InitializationOptions
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ServerEvent,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from workdock import __version__
from workdock.mcp.connection import CallTimeout, HubError, NotFound, Notice, ToolNotFound
from workdock.mcp.hooks import AskFn, CallHooks, declined, no_sampling
from workdock.mcp.hub import Catalog, Hub
from workdock.mcp.input_relay import InputRelay
from workdock.mcp.offered import AmbiguousResource

logger = logging.getLogger(__name__)

SERVER_NAME = "workdock"
NOTICE_QUEUE = 1024
# MCP's log levels, least severe first (RFC 5424's, as the specification lists them).
_LEVELS: tuple[types.LoggingLevel, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)
_RESOURCE_NOT_FOUND = -32002  # the MCP specification's code for an unknown resource URI


@dataclass(frozen=True)
class _View:
    """What one gateway offers from a catalog: the listings compared to tell clients of changes."""

    tools: tuple[types.Tool, ...]
    resources: tuple[types.Resource, ...]
    templates: tuple[types.ResourceTemplate, ...]
    prompts: tuple[types.Prompt, ...]


def error_of(exc: HubError) -> MCPError:
    """A hub failure as the JSON-RPC error a client expects."""
    if isinstance(exc, ToolNotFound | AmbiguousResource):
        return MCPError(types.INVALID_PARAMS, exc.message)
    if isinstance(exc, NotFound):
        return MCPError(_RESOURCE_NOT_FOUND, exc.message)
    if isinstance(exc, CallTimeout):
        return MCPError(types.REQUEST_TIMEOUT, exc.message)
    return MCPError(types.INTERNAL_ERROR, exc.message)


class _GatewayServer(Server[Any]):
    """The handshake era learns of list changes from the capabilities: say they are sent."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        every = NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True)
        return super().create_initialization_options(
            notification_options or every, experimental_capabilities, extensions
        )


class Gateway:
    """One MCP server over ``hub``; ``only`` names the one server to front without prefixes."""

    def __init__(self, hub: Hub, only: str | None = None) -> None:
        self.hub = hub
        self.only = only
        self._bus = InMemorySubscriptionBus()
        self._listen = ListenHandler(self._bus)
        # Handshake-era connections, told of changes on their standalone stream; each is
        # forgotten when it closes (its exit stack).
        self._connections: set[Any] = set()
        # Handshake-era connections by the session id the HTTP transport gave them, from their
        # ``initialize`` on (the MCP endpoint's lean path reads a session's client capabilities
        # here; the SDK takes a session's requests from then too, before ``initialized``).
        self._sessions: dict[str, Any] = {}
        self._relay = InputRelay()
        self._schemas: tuple[int, dict[str, Any]] = (-1, {})
        # Logging is a 2025-era capability (deprecated by 2026-07-28): offered for the clients of
        # that era, whose servers' log messages are passed on.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            self.server = _GatewayServer(
                SERVER_NAME if only is None else f"{SERVER_NAME}:{only}",
                version=__version__,
                on_list_tools=self._list_tools,
                on_call_tool=self._call_tool,
                on_list_resources=self._list_resources,
                on_list_resource_templates=self._list_templates,
                on_read_resource=self._read_resource,
                on_list_prompts=self._list_prompts,
                on_get_prompt=self._get_prompt,
                on_subscriptions_listen=self._listen,
                on_completion=self._complete,
                on_subscribe_resource=self._subscribe,
                on_unsubscribe_resource=self._unsubscribe,
                on_set_logging_level=self._set_logging_level,
                # The 2026-07-28 transport checks a call's Mcp-Param headers against the tool's
                # input schema; without this it lists every tool to find it, on every call.
                get_tool_input_schema=self.input_schema,
            )
        self.server.middleware.append(self._track_connections)
        # Per handshake-era connection: the log level it asked for, the resource URIs it watches.
        self._log_levels: dict[Any, int] = {}
        self._subscriptions: dict[Any, set[str]] = {}
        # The servers' log messages and resource updates, queued for the clients (a burst past the
        # queue's size is dropped: they are best-effort notifications).
        self._notices_in, self._notices_out = anyio.create_memory_object_stream[tuple[str, Notice]](
            NOTICE_QUEUE
        )
        self._stop_notices = hub.listen_for_notices(self._relay_notice)

    # ---- what is offered ------------------------------------------------------------------------

    def view(self, catalog: Catalog | None = None) -> _View:
        catalog = catalog or self.hub.catalog
        only = self.only
        if only is None:
            return _View(
                tools=tuple(t.tool.model_copy(update={"name": t.name}) for t in catalog.tools),
                resources=tuple(r.resource for r in catalog.resources),
                templates=tuple(t.template for t in catalog.templates),
                prompts=tuple(p.prompt.model_copy(update={"name": p.name}) for p in catalog.prompts),
            )
        # One server, as it names things itself.
        return _View(
            tools=tuple(t.tool for t in catalog.tools if t.server == only),
            resources=tuple(r.resource for r in catalog.resources if r.server == only),
            templates=tuple(t.template for t in catalog.templates if t.server == only),
            prompts=tuple(p.prompt for p in catalog.prompts if p.server == only),
        )

    def tool_name(self, name: str) -> str:
        """The hub's name for a tool the client called."""
        if self.only is None:
            return name
        offered = self.hub.offered_tool(self.only, name)
        if offered is None:
            raise MCPError(types.INVALID_PARAMS, f"no tool named {name!r} on server {self.only!r}")
        return offered

    def input_schema(self, name: str) -> dict[str, Any] | None:
        """The input schema of the tool the client calls ``name`` (None: no such tool listed)."""
        catalog = self.hub.catalog
        version, schemas = self._schemas
        if version != catalog.version:
            schemas = {tool.name: tool.input_schema for tool in self.view(catalog).tools}
            self._schemas = (catalog.version, schemas)
        return schemas.get(name)

    def _prompt_name(self, name: str) -> str:
        if self.only is None:
            return name
        for prompt in self.hub.catalog.prompts:
            if prompt.server == self.only and prompt.original_name == name:
                return prompt.name
        raise MCPError(types.INVALID_PARAMS, f"no prompt named {name!r} on server {self.only!r}")

    # ---- handlers -------------------------------------------------------------------------------

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=list(self.view().tools))

    async def _list_resources(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=list(self.view().resources))

    async def _list_templates(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=list(self.view().templates))

    async def _list_prompts(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=list(self.view().prompts))

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        name = self.tool_name(params.name)
        arguments = params.arguments or {}
        if params.request_state is not None:  # a 2026-07-28 client's answer to input_required
            return await self._relay.resume(params.request_state, name, params.input_responses)
        if _can_be_asked_between_rounds(ctx) and self._relay.can_hold():

            async def call(ask: AskFn) -> types.CallToolResult:
                return await self._hub_call(name, arguments, _hooks(ctx, ask))

            return await self._relay.start(name, call)
        return await self._hub_call(name, arguments, _hooks(ctx))

    async def _hub_call(self, name: str, arguments: dict[str, Any], hooks: CallHooks) -> types.CallToolResult:
        try:
            return await self.hub.call(name, arguments, hooks=hooks)
        except HubError as exc:
            raise error_of(exc) from None

    async def _read_resource(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        try:
            _server, result = await self.hub.read_resource(params.uri, self.only)
        except ToolNotFound as exc:  # no server offers that URI
            raise MCPError(_RESOURCE_NOT_FOUND, exc.message) from None
        except HubError as exc:
            raise error_of(exc) from None
        return result

    async def _get_prompt(
        self, ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        name = self._prompt_name(params.name)
        try:
            _prompt, result = await self.hub.get_prompt(name, params.arguments or {})
        except HubError as exc:
            raise error_of(exc) from None
        return result

    async def _complete(
        self, ctx: ServerRequestContext[Any], params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        try:
            return await self.hub.complete(params.ref, params.argument, params.context, self.only)
        except HubError as exc:
            raise error_of(exc) from None

    async def _set_logging_level(
        self, ctx: ServerRequestContext[Any], params: types.SetLevelRequestParams
    ) -> types.EmptyResult:
        connection = _connection_of(ctx)
        if connection is not None:
            self._log_levels[connection] = _LEVELS.index(params.level)
        # The servers' own level is shared by every client: the most verbose one asked for; each
        # client is then sent what its own level lets through.
        wanted = min(self._log_levels.values(), default=_LEVELS.index(params.level))
        await self.hub.set_logging_level(_LEVELS[wanted], self.only)
        return types.EmptyResult()

    async def _subscribe(
        self, ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        try:
            await self.hub.subscribe(params.uri, self.only)
        except ToolNotFound as exc:  # no server offers that URI
            raise MCPError(_RESOURCE_NOT_FOUND, exc.message) from None
        except HubError as exc:
            raise error_of(exc) from None
        if (connection := _connection_of(ctx)) is not None:
            self._subscriptions.setdefault(connection, set()).add(params.uri)
        return types.EmptyResult()

    async def _unsubscribe(
        self, ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        if (connection := _connection_of(ctx)) is not None:
            self._subscriptions.get(connection, set()).discard(params.uri)
        if not any(params.uri in watched for watched in self._subscriptions.values()):
            try:  # nobody watches it any more: the server may stop telling
                await self.hub.subscribe(params.uri, self.only, subscribe=False)
            except HubError as exc:
                logger.info("unsubscribing from %s: %s", params.uri, exc.message)
        return types.EmptyResult()

    async def _track_connections(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method == "initialize" and (connection := _connection_of(ctx)) is not None:
            # Known by its session id from here, not from ``initialized``: the 202 to that
            # notification reaches the client before the SDK has handled it, and a call sent at
            # once must find the session (the SDK itself takes it; see ``session``).
            if (session_id := connection.session_id) is not None and session_id not in self._sessions:
                self._sessions[session_id] = connection
                connection.exit_stack.callback(self._sessions.pop, session_id, None)
        elif ctx.method == "notifications/initialized":
            # The SDK's context has no public handle on the connection; its standalone
            # channel is where a handshake-era client hears of changes.
            connection = ctx.session._connection
            self._connections.add(connection)
            connection.exit_stack.callback(self._forget, connection)
        return result

    def session(self, session_id: str) -> Any | None:
        """The handshake-era connection of HTTP session ``session_id`` once the SDK takes its
        requests (its ``initialize`` was accepted: ``initialized`` need not have come yet)."""
        connection = self._sessions.get(session_id)
        return connection if connection is not None and connection.initialize_accepted else None

    def _forget(self, connection: Any) -> None:
        self._connections.discard(connection)
        self._log_levels.pop(connection, None)
        self._subscriptions.pop(connection, None)

    # ---- log messages and resource updates --------------------------------------------------------

    def _relay_notice(self, server: str, notice: Notice) -> None:
        if self.only is not None and server != self.only:
            return
        try:
            self._notices_in.send_nowait((server, notice))
        except anyio.WouldBlock:
            logger.debug("server %s: a notification was dropped (the clients are behind)", server)

    async def _send_notices(self) -> None:
        async for server, notice in self._notices_out:
            if isinstance(notice, types.LoggingMessageNotification):
                log = notice.params
                level = _LEVELS.index(log.level)
                # Which server spoke, when one endpoint fronts many.
                name = (
                    log.logger
                    if self.only is not None
                    else f"{server}{'/' + log.logger if log.logger else ''}"
                )
                params: dict[str, Any] = {"level": log.level, "data": log.data}
                if name:
                    params["logger"] = name
                for connection, wanted in list(self._log_levels.items()):
                    if level >= wanted:
                        await connection.notify("notifications/message", params)
            else:
                uri = notice.params.uri
                for connection, watched in list(self._subscriptions.items()):
                    if uri in watched:
                        await connection.send_resource_updated(uri)

    # ---- change notifications -------------------------------------------------------------------

    async def tell_changes(self) -> None:
        """Run for the gateway's life: every change of what it offers reaches every client, and
        so do the servers' log messages and resource updates."""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._send_notices)
            await self._tell_list_changes()

    async def _tell_list_changes(self) -> None:
        last = self.view()
        while True:
            now = self.view()
            if now == last:
                await self.hub.wait_for_change()
                continue
            changed: list[tuple[ServerEvent, Callable[[Any], Any]]] = []
            if now.tools != last.tools:
                changed.append((ToolsListChanged(), lambda c: c.send_tool_list_changed()))
            if now.resources != last.resources or now.templates != last.templates:
                changed.append((ResourcesListChanged(), lambda c: c.send_resource_list_changed()))
            if now.prompts != last.prompts:
                changed.append((PromptsListChanged(), lambda c: c.send_prompt_list_changed()))
            last = now
            for event, send in changed:
                await self._bus.publish(event)  # 2026-07-28 clients: their subscriptions/listen streams
                for connection in list(self._connections):
                    await send(connection)  # best-effort: a closed stream drops it

    def close(self) -> None:
        """End the open listen streams (graceful: each gets its final result) and the held calls."""
        self._listen.close()
        self._relay.close()
        self._stop_notices()


def _connection_of(ctx: ServerRequestContext[Any]) -> Any:
    """The handshake-era connection a request came on (None on a 2026-07-28 one)."""
    return (
        getattr(ctx.session, "_connection", None)
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS
        else None
    )


NO_ELICITATION = "the MCP client did not declare the elicitation capability"
NO_SAMPLING = "the MCP client did not declare the sampling capability"


def _can_be_asked_between_rounds(ctx: ServerRequestContext[Any]) -> bool:
    """A 2026-07-28 client that can answer ``input_required`` for an elicitation."""
    capabilities = ctx.session.client_capabilities
    return (
        ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        and capabilities is not None
        and capabilities.elicitation is not None
    )


def _hooks(ctx: ServerRequestContext[Any], relayed: AskFn | None = None) -> CallHooks:
    """Progress to the client's token; requests for input to the client, when it can answer
    (``relayed``: put to a 2026-07-28 client as ``input_required``)."""
    token = (ctx.meta or {}).get("progress_token")

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        await ctx.session.report_progress(progress, total, message)

    metadata = ServerMessageMetadata(related_request_id=ctx.request_id)

    def cannot_send(declared: object, missing: str) -> str | None:
        """Why the client cannot be sent a request during this call (None: it can)."""
        if declared is None:
            return missing
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS or not ctx.session.can_send_request:
            return "the MCP client cannot be asked during a call on this connection"
        return None

    async def ask(params: types.ElicitRequestParams) -> types.ElicitResult:
        capabilities = ctx.session.client_capabilities
        if why := cannot_send(capabilities and capabilities.elicitation, NO_ELICITATION):
            return declined(why)
        request = types.ElicitRequest(params=params)
        return await ctx.session.send_request(request, types.ElicitResult, metadata=metadata)

    async def sample(params: types.CreateMessageRequestParams) -> types.CreateMessageResult | types.ErrorData:
        capabilities = ctx.session.client_capabilities
        if why := cannot_send(capabilities and capabilities.sampling, NO_SAMPLING):
            return no_sampling(why)
        request = types.CreateMessageRequest(params=params)
        try:
            return await ctx.session.send_request(request, types.CreateMessageResult, metadata=metadata)
        except MCPError as exc:
            return exc.error

    return CallHooks(
        on_progress=on_progress if token is not None else None, ask=relayed or ask, sample=sample
    )
