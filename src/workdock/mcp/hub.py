"""All servers of one source of specs: reconcile, catalog, route calls.

The agent's hub gets its specs from ``.mcp.json`` files; the chat server's hub
from the admin's database rows. Everything else is the same code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import TaskGroup

from workdock.agentapi import ServerStatus
from workdock.mcp import naming
from workdock.mcp.config import Entry
from workdock.mcp.connection import (
    AGENT_SIGN_IN_HINT,
    CallTimeout,
    ChildEnv,
    Connection,
    HubError,
    Notice,
    ResultTooLarge,
    ServerUnavailable,
    ToolNotFound,
    UpstreamError,
)
from workdock.mcp.held import held_fields
from workdock.mcp.hooks import NO_HOOKS, CallHooks
from workdock.mcp.limits import DEFAULT_MAX_RESULT_BYTES
from workdock.mcp.oauth import SignInError, Vault, revoke
from workdock.mcp.offered import (
    AmbiguousResource,
    CatalogPrompt,
    CatalogResource,
    CatalogTemplate,
    OfferedRoutes,
    offer_offerings,
)

__all__ = [
    "CallTimeout",
    "Catalog",
    "CatalogPrompt",
    "CatalogResource",
    "CatalogTemplate",
    "CatalogTool",
    "Hub",
    "HubError",
    "ResultTooLarge",
    "ServerUnavailable",
    "ToolNotFound",
    "UpstreamError",
]

logger = logging.getLogger(__name__)

DEFAULT_CALL_TIMEOUT = 60.0
# A server's own `timeout` is held to the most a caller may ask for (call-tool's timeout_ms), so a
# client waiting that long plus a margin always sees the agent's answer.
MAX_CALL_TIMEOUT = 600.0


@dataclass(frozen=True)
class CatalogTool:
    server: str
    name: str  # the offered name, "<server>__<tool>", LLM-safe and unique
    original_name: str
    tool: types.Tool


@dataclass(frozen=True)
class Catalog:
    """What the workspace offers: every ready server's tools, resources, templates and prompts.

    ``version`` changes whenever any of them does."""

    version: int
    tools: tuple[CatalogTool, ...]  # of ready servers, sorted by name
    resources: tuple[CatalogResource, ...] = ()  # sorted by (uri, server)
    templates: tuple[CatalogTemplate, ...] = ()  # sorted by (server, uri template)
    prompts: tuple[CatalogPrompt, ...] = ()  # sorted by name


@dataclass(frozen=True)
class _Route:
    connection: Connection
    original_name: str


class _Running:
    """A connection with the cancel scope that stops its owner task."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()

    async def run(self) -> None:
        try:
            with self.scope:
                await self.connection.run()
        finally:
            self.done.set()

    async def stop(self) -> None:
        self.scope.cancel()
        await self.done.wait()


class Hub:
    def __init__(
        self,
        *,
        workspace: Path | None = None,
        child_env: ChildEnv,
        connect_timeout: float = 30.0,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        vault: Vault | None = None,
        revoke_removed: bool = True,
        sign_in_hint: str = AGENT_SIGN_IN_HINT,
    ) -> None:
        """``child_env`` makes a stdio server's environment; ``max_result_bytes`` caps each message;
        ``vault`` keeps OAuth sign-ins (without one, a server that wants sign-in fails), revoked
        when their server is removed unless ``revoke_removed`` is false (their owner decides);
        ``sign_in_hint`` tells a person how to sign in to server ``{name}`` (status and log)."""
        self.sign_in_hint = sign_in_hint
        self.vault = vault
        self.revoke_removed = revoke_removed
        self.workspace = (workspace or Path.cwd()).resolve()
        self.connect_timeout = connect_timeout
        self.child_env = child_env
        self.max_result_bytes = max_result_bytes
        self._running: dict[str, _Running] = {}
        self._task_group: TaskGroup | None = None
        self._catalog = Catalog(version=0, tools=())
        self._routes: dict[str, _Route] = {}
        self._offered = OfferedRoutes()
        self._naming_warnings: dict[str, list[str]] = {}
        self._changed = anyio.Event()
        self._notice_listeners: list[Callable[[str, Notice], None]] = []

    async def __aenter__(self) -> Hub:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._task_group is not None
        with anyio.CancelScope(shield=True):
            await self.stop_all()
        self._task_group.cancel_scope.cancel()
        return await self._task_group.__aexit__(exc_type, exc, tb)

    # ---- configuration --------------------------------------------------------------------------

    async def apply(self, entries: Sequence[Entry]) -> None:
        """Make the running servers match ``entries``: only what changed is touched.

        Returns once removed and changed servers are stopped; new ones connect in the background.
        """
        assert self._task_group is not None, "use the hub as `async with Hub() as hub`"
        wanted = {entry.name: entry for entry in entries}
        stale = [
            r for name, r in self._running.items() if name not in wanted or r.connection.entry != wanted[name]
        ]
        for running in stale:
            del self._running[running.connection.name]
        await self._stop_all(stale)
        if self.vault is not None and self.revoke_removed:
            for running in stale:
                old = running.connection.spec
                new = wanted.get(running.connection.name)
                if old is not None and old.url and (new is None or getattr(new, "url", None) != old.url):
                    # Removed (or now another server): its sign-in goes, revoked where possible.
                    self._task_group.start_soon(revoke, self.vault, old.name, old.oauth)
        for name, entry in wanted.items():
            if name in self._running:
                # Same server; only its metadata (file, duplicate warnings) may differ.
                self._running[name].connection.entry = entry
                continue
            connection = Connection(
                entry,
                workspace=self.workspace,
                connect_timeout=self.connect_timeout,
                on_change=self._rebuild,
                child_env=self.child_env,
                max_result_bytes=self.max_result_bytes,
                vault=self.vault,
                on_notice=self._notice,
                sign_in_hint=self.sign_in_hint,
            )
            running = _Running(connection)
            self._running[name] = running
            self._task_group.start_soon(running.run, name=f"mcp server {name}")
        self._rebuild()

    async def stop_all(self) -> None:
        """Stop every server (concurrently, each within a few seconds)."""
        running = list(self._running.values())
        self._running.clear()
        await self._stop_all(running)
        self._rebuild()

    async def _stop_all(self, running: Sequence[_Running]) -> None:
        async with anyio.create_task_group() as tg:
            for item in running:
                tg.start_soon(item.stop)

    # ---- catalog --------------------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def _rebuild(self) -> None:
        """Recompute names, routes and the listing after any server changed."""
        connections = [r.connection for r in self._running.values()]
        # Tools of a server that is coming back stay routable (a call gets 502, not 404),
        # but only ready servers' tools are listed.
        known = {(c.name, t.name): (c, t) for c in connections for t in c.tools if c.spec is not None}
        offered = naming.offer(known.keys())
        routes: dict[str, _Route] = {}
        listed: list[CatalogTool] = []
        warnings: dict[str, list[str]] = {}
        for item in offered:
            connection, tool = known[(item.server, item.original)]
            routes[item.offered] = _Route(connection, item.original)
            if item.warning:
                warnings.setdefault(item.server, []).append(item.warning)
            if connection.state == "ready":
                listed.append(CatalogTool(item.server, item.offered, item.original, tool))
        listed.sort(key=lambda t: t.name)
        self._routes = routes
        self._offered = offer_offerings(connections, warnings)
        self._naming_warnings = warnings
        catalog = Catalog(self._catalog.version, tuple(listed), *self._offered.listed())
        if catalog != self._catalog:
            self._catalog = replace(catalog, version=self._catalog.version + 1)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for_change(self) -> None:
        """Wait until any server's state or tools change."""
        await self._changed.wait()

    async def wait_until_settled(self, timeout: float) -> bool:
        """Wait (at most ``timeout``) until no server is connecting; ``True`` if that happened."""
        with anyio.move_on_after(timeout):
            while any(r.connection.state == "connecting" for r in self._running.values()):
                await self.wait_for_change()
            return True
        return False

    async def refresh(self, timeout: float = 10.0) -> None:
        """Re-list every ready server, and give new ones (at most ``timeout``) to connect."""
        async with anyio.create_task_group() as tg:
            for running in list(self._running.values()):
                tg.start_soon(running.connection.refresh, timeout)
            tg.start_soon(self.wait_until_settled, timeout)

    # ---- calls ----------------------------------------------------------------------------------

    @property
    def server_names(self) -> frozenset[str]:
        """Every configured server's name, whatever its state."""
        return frozenset(self._running)

    def has_tool(self, name: str) -> bool:
        return name in self._routes

    def offered_tool(self, server: str, original: str) -> str | None:
        """The offered name of ``server``'s tool ``original`` (listed or not: routable)."""
        for offered, route in self._routes.items():
            if route.connection.name == server and route.original_name == original:
                return offered
        return None

    async def call(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        timeout: float | None = None,
        hooks: CallHooks = NO_HOOKS,
    ) -> types.CallToolResult:
        """Route a call; ``hooks`` receive its progress and the server's requests for input."""
        connection, tool, timeout = self._route(name, timeout)
        return await connection.call(tool, arguments or {}, timeout, hooks)

    async def call_wire(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        timeout: float | None = None,
        hooks: CallHooks = NO_HOOKS,
    ) -> dict[str, Any]:
        """As :meth:`call`, answered as the agent's call-tool response body (passed through)."""
        connection, tool, timeout = self._route(name, timeout)
        return await connection.call_wire(tool, arguments or {}, timeout, hooks)

    def _route(self, name: str, timeout: float | None) -> tuple[Connection, str, float]:
        route = self._routes.get(name)
        if route is None:
            raise ToolNotFound(f"no tool named {name!r} in the catalog")
        connection = route.connection
        return connection, route.original_name, _timeout(connection, timeout)

    def deliver_auth(self, server: str, code: str, state: str, iss: str | None = None) -> None:
        """Hand a sign-in's authorization code to the server's flow (``SignInError`` if it cannot take it)."""
        running = self._running.get(server)
        if running is None:
            raise SignInError(404, f"no server named {server!r}")
        running.connection.sign_in.deliver(code, state, iss)

    async def restart_sign_in(self, server: str, redirect_uri: str | None) -> str:
        """Start a waiting sign-in again for ``redirect_uri`` (None: the loopback one): its new URL."""
        running = self._running.get(server)
        if running is None:
            raise SignInError(404, f"no server named {server!r}")
        return await running.connection.sign_in.restart(redirect_uri)

    async def read_resource(
        self, uri: str, server: str | None = None, timeout: float | None = None
    ) -> tuple[str, types.ReadResourceResult]:
        """Read ``uri`` from ``server`` (or from the one server that lists it or a template it fits)."""
        connections = {n: r.connection for n, r in self._running.items()}
        connection = self._offered.resource_route(uri, server, connections)
        if server is None:
            uri = self._offered.resource_uri(uri)  # an offered id stands for its server's URI
        result = await connection.read_resource(uri, _timeout(connection, timeout))
        return connection.name, result

    async def get_prompt(
        self, name: str, arguments: dict[str, str] | None = None, timeout: float | None = None
    ) -> tuple[CatalogPrompt, types.GetPromptResult]:
        route = self._offered.prompts.get(name)
        if route is None:
            raise ToolNotFound(f"no prompt named {name!r} in the catalog")
        prompt, connection = route
        result = await connection.get_prompt(
            prompt.original_name, arguments or {}, _timeout(connection, timeout)
        )
        return prompt, result

    async def complete(
        self,
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: types.CompletionArgument,
        context: types.CompletionContext | None = None,
        only: str | None = None,
        timeout: float | None = None,
    ) -> types.CompleteResult:
        """Completions for a prompt's (offered name) or a resource template's argument, from the
        server that offers it (``only``: that server, under its own names)."""
        if isinstance(ref, types.PromptReference):
            if only is not None:
                route = next(
                    (
                        (p, c)
                        for p, c in self._offered.prompts.values()
                        if p.server == only and p.original_name == ref.name
                    ),
                    None,
                )
            else:
                route = self._offered.prompts.get(ref.name)
            if route is None:
                raise ToolNotFound(f"no prompt named {ref.name!r} in the catalog")
            prompt, connection = route
            ref = ref.model_copy(update={"name": prompt.original_name})
        else:
            servers = sorted(
                {
                    t.server
                    for t in self._offered.templates
                    if t.template.uri_template == ref.uri and (only is None or t.server == only)
                }
            )
            if not servers:
                raise ToolNotFound(f"no resource template {ref.uri!r} in the catalog")
            if len(servers) > 1:
                raise AmbiguousResource(f"resource template {ref.uri!r} is offered by {', '.join(servers)}")
            connection = self._running[servers[0]].connection
        return await connection.complete(ref, argument, context, _timeout(connection, timeout))

    async def set_logging_level(self, level: types.LoggingLevel, only: str | None = None) -> list[str]:
        """Ask every ready server that logs (``only``: that one) for messages from ``level`` up; the
        servers that took it. A server that refuses is left as it was (and logged)."""
        taken: list[str] = []
        for name, running in list(self._running.items()):
            connection = running.connection
            if (only is not None and name != only) or connection.state != "ready":
                continue
            try:
                if await connection.set_logging_level(level, _timeout(connection, None)):
                    taken.append(name)
            except HubError as exc:
                logger.info("server %s: the logging level was not set: %s", name, exc.message)
        return taken

    async def subscribe(self, uri: str, only: str | None = None, *, subscribe: bool = True) -> str:
        """Subscribe to (or unsubscribe from) ``uri`` at the server that offers it; that server."""
        connections = {n: r.connection for n, r in self._running.items()}
        connection = self._offered.resource_route(uri, only, connections)
        if only is None:
            uri = self._offered.resource_uri(uri)
        await connection.subscribe(uri, _timeout(connection, None), subscribe=subscribe)
        return connection.name

    def listen_for_notices(self, listener: Callable[[str, Notice], None]) -> Callable[[], None]:
        """Have ``listener(server, notice)`` hear every server's log messages and resource
        updates; returns what stops it."""
        self._notice_listeners.append(listener)
        return lambda: self._notice_listeners.remove(listener)

    def _notice(self, server: str, notice: Notice) -> None:
        for listener in list(self._notice_listeners):
            listener(server, notice)

    # ---- status ---------------------------------------------------------------------------------

    def statuses(self) -> list[ServerStatus]:
        result = []
        for running in self._running.values():
            c = running.connection
            spec = c.spec
            result.append(
                ServerStatus(
                    name=c.name,
                    transport=spec.transport if spec else c.entry.transport,
                    state=c.state,
                    tool_count=len(c.tools) if c.state == "ready" else 0,
                    error=c.error,
                    stderr_tail=list(c.stderr_tail),
                    restarts=c.restarts,
                    protocol_version=c.protocol_version,
                    config_file=c.entry.config_file,
                    warnings=[*c.entry.warnings, *self._naming_warnings.get(c.name, [])],
                    authorization_url=c.sign_in.authorization_url if c.state == "needs_auth" else None,
                    **held_fields(c.entry),
                )
            )
        return sorted(result, key=lambda s: s.name)


def _timeout(connection: Connection, timeout: float | None) -> float:
    """The caller's timeout, else the server's own ``timeout``, else the default (held to the maximum)."""
    if timeout is not None:
        return timeout
    spec = connection.spec
    chosen = spec.timeout_ms / 1000 if spec and spec.timeout_ms else DEFAULT_CALL_TIMEOUT
    return min(chosen, MAX_CALL_TIMEOUT)
