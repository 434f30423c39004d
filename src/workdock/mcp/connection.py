"""One upstream MCP server: connect, list, call, supervise, reconnect.

Each connection has exactly one owner task (:meth:`Connection.run`): it opens
the transport and session, lists the tools, serves until the server is lost,
closes everything it opened, and tries again with backoff. Closing an anyio
session from any other task fails, so nothing else ever closes it; other tasks
only *call* through it.

A stdio server is lost when its process ends. An HTTP or SSE server can vanish
without a sound (its streams just stop), so it is pinged every
``LIVENESS_INTERVAL``; one that does not answer is reconnected.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client._input_required import InputRequiredRoundsExceededError, run_input_required_driver
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import (
    ClientRequestContext,
    ClientSession,
    _clamp_inbound_ttl,
    _later_revision_fields,
)
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ListenNotSupportedError, SubscriptionLost
from mcp.shared.dispatcher import CallOptions, ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import MCP_NAME_HEADER, encode_header_value
from mcp_types import methods as _methods
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import TypeAdapter, ValidationError

from workdock import __version__
from workdock.agentapi import ServerState
from workdock.log_redact import redact
from workdock.mcp.config import Entry, HeldEntry, InvalidEntry, ServerSpec
from workdock.mcp.content import raw_result_to_dict, result_to_dict
from workdock.mcp.fast_lane import FastLane
from workdock.mcp.headers_helper import HeadersHelperAuth
from workdock.mcp.hooks import CANNOT_ASK, NO_HOOKS, CallHooks, declined, no_sampling
from workdock.mcp.http import client_factory, explain_status, shown_url, sse_line_limit
from workdock.mcp.limits import DEFAULT_MAX_RESULT_BYTES, is_oversize
from workdock.mcp.oauth import ServerTokens, SignIn, Vault, provider_for
from workdock.mcp.offerings import Offerings, list_offerings
from workdock.mcp.stdio import stdio_transport
from workdock.mcp.tracing import skip_untraced_spans, tracing

logger = logging.getLogger(__name__)

# What a server tells of its own accord that an MCP client of the hub may want passed on.
Notice = types.LoggingMessageNotification | types.ResourceUpdatedNotification
skip_untraced_spans()  # every connection's requests: the SDK's no-op spans cost a tenth of a call

STDERR_TAIL_LINES = 50
MAX_BACKOFF = 60.0
MAX_TOOL_PAGES = 1000  # a server whose cursor never ends cannot hang the listing
# An HTTP/SSE server is pinged this often, and lost when it does not answer within the timeout:
# a stopped server is noticed within about 20 s, without waiting for a call to fail.
LIVENESS_INTERVAL = 10.0
LIVENESS_TIMEOUT = 10.0
CLOSE_GRACE = 2.0  # for closing the session of a server that was lost
# Room for the SSE framing ("data: ", event fields) around a message of the limit's size.
_SSE_FRAMING = 4096
_CLIENT_INFO = types.Implementation(name="workdock", version=__version__)
# Transport-level failures: the server is gone, not merely answering with an error.
RESOURCE_NOT_FOUND = -32002  # the MCP specification's code for an unknown resource URI
_Result = TypeVar("_Result", bound=types.Result)
_LOST_ERRORS = (httpx2.TransportError, OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)
# What one request may fail with, mapped to a HubError (``Connection._failure``).
_MAPPED_ERRORS = (MCPError, InputRequiredRoundsExceededError, ValidationError, *_LOST_ERRORS)
# A 2026-07-28 server may answer a call with input_required instead of its result.
_CALL_RESULT: TypeAdapter[types.CallToolResult | types.InputRequiredResult] = TypeAdapter(
    types.CallToolResult | types.InputRequiredResult
)


# Where the agent runs a server that wants OAuth: its row in the web UI, or the terminal.
AGENT_SIGN_IN_HINT = "Sign in on its row in the web UI, or run workdock auth {name}"


class HubError(Exception):
    """A call could not be answered by the server; ``status`` is the agent API's HTTP status."""

    status = 502

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ToolNotFound(HubError):
    status = 404


class NotFound(HubError):
    """The server says the resource (or prompt) does not exist."""

    status = 404


class ServerUnavailable(HubError):
    status = 502


class UpstreamError(HubError):
    status = 502


class CallTimeout(HubError):
    status = 504


class ResultTooLarge(HubError):
    status = 502


ChildEnv = Callable[[Mapping[str, str] | None], dict[str, str]]
"""The whole environment of a stdio server, given its entry's ``env``: the hub's owner decides
(the agent: ``workdock.agent.child_env.workspace_env``)."""


def _initial_state(entry: Entry) -> ServerState:
    if isinstance(entry, InvalidEntry):
        return "failed"
    if isinstance(entry, HeldEntry):
        return entry.state  # needs_input or pending_approval: never started
    return "disabled" if entry.disabled else "connecting"


def _initial_error(entry: Entry) -> str | None:
    if isinstance(entry, InvalidEntry):
        return entry.error
    return entry.message if isinstance(entry, HeldEntry) else None


def backoff_delay(failures: int) -> float:
    """1 s, doubling per consecutive failure, capped at 60 s."""
    return min(MAX_BACKOFF, 2.0 ** max(0, failures - 1))


class Connection:
    """A server's live state; :meth:`run` is its owner task."""

    def __init__(
        self,
        entry: Entry,
        *,
        workspace: Path,
        connect_timeout: float,
        on_change: Callable[[], None],
        child_env: ChildEnv,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        vault: Vault | None = None,
        on_notice: Callable[[str, Notice], None] | None = None,
        sign_in_hint: str = AGENT_SIGN_IN_HINT,
    ) -> None:
        self.entry = entry
        self.sign_in_hint = sign_in_hint  # how a person signs in to server {name}, where this runs
        # The server's log messages and resource updates, for whoever relays them (the gateway).
        self._on_notice = on_notice
        self.vault = vault  # where sign-ins are kept; without one a server that wants OAuth fails
        self.workspace = workspace
        self.connect_timeout = connect_timeout
        self._on_change = on_change
        self._child_env = child_env
        self.max_result_bytes = max_result_bytes
        self.state: ServerState = _initial_state(entry)
        self.error: str | None = _initial_error(entry)
        self.tools: tuple[types.Tool, ...] = ()
        self.offerings = Offerings()  # resources, resource templates, prompts
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self.restarts = 0
        self.protocol_version: str | None = None
        self._client: Client | None = None
        self._lane: FastLane | None = None  # a stdio session's plain calls (fast_lane)
        self._lost = anyio.Event()
        self._refresh_wanted = anyio.Event()
        self._listed = anyio.Event()  # set after each completed listing; `refresh` waits on it
        # The era found on the first connect, reused on reconnects so a legacy server
        # never pays the server/discover probe's timeout again.
        self._mode: str = "auto"
        self._prior_discover: types.DiscoverResult | None = None
        self._calls: list[_Call] = []  # in flight, oldest first: a 2025-era elicitation goes to one
        # The last (state, error) logged, and when: the terminal hears of a failure once, not per retry.
        self._reported: tuple[ServerState, str | None] | None = None
        self._reported_at = 0.0
        # OAuth (http/sse with a vault): the sign-in waiting for a person, and the connect budget
        # it suspends while it waits.
        self.sign_in = SignIn(self._on_authorization_url)
        self._auth: OAuthClientProvider | None = None
        self._budget: anyio.CancelScope | None = None
        self._state_before_auth: ServerState = "connecting"

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def spec(self) -> ServerSpec | None:
        return self.entry if isinstance(self.entry, ServerSpec) else None

    # ---- the owner task -------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, and come back after every loss, until cancelled."""
        spec = self.spec
        if spec is None or spec.disabled:
            # invalid or disabled: shown in status, never started
            if isinstance(self.entry, HeldEntry):
                logger.warning("server %s: %s: %s", self.name, self.state, self.error)
            elif spec is None:
                logger.warning("server %s: failed: %s", self.name, self.error)
            else:
                logger.info("server %s: disabled", self.name)
            return
        failures = 0
        while True:
            ready_since = await self._session_once(spec)
            if ready_since is not None and time.monotonic() - ready_since >= MAX_BACKOFF:
                failures = 0  # it ran well for a while: a new loss starts the backoff over
            failures += 1
            delay = backoff_delay(failures)
            if self.state == "ready":
                self.state = "restarting"
            self._report_failure(delay)
            self._changed()
            await anyio.sleep(delay)
            if self.state == "failed":
                self.state = "connecting"
                self._changed()

    async def _session_once(self, spec: ServerSpec) -> float | None:
        """One connection's life; returns when it is over (the monotonic time it became ready, if it did)."""
        self._lost = anyio.Event()
        ready_since: float | None = None
        budget = anyio.CancelScope(deadline=anyio.current_time() + self.connect_timeout)
        self._budget = budget
        try:
            with budget:
                async with self._open_client(spec) as client:
                    tools = await self._list_tools(client)
                    self.offerings = await list_offerings(client, self.name)
                    budget.deadline = math.inf  # connected: the connect budget no longer applies
                    self._became_ready(client, tools)
                    ready_since = time.monotonic()
                    await self._serve(client)
                    # Lost: closing politely (the SDK ends an HTTP session with a DELETE) gets a
                    # moment, not the timeouts of a server that stopped answering.
                    budget.deadline = anyio.current_time() + CLOSE_GRACE
            if budget.cancelled_caught and ready_since is None:
                self._connect_failed(
                    f"no answer within the connect budget of {self.connect_timeout:g} s", reset_era=False
                )
        except Exception as exc:
            if ready_since is None:
                reason = _describe(exc)
                if spec.transport == "stdio" and self._lost.is_set():
                    # "Connection closed" says little: the process ended; its last words usually say why.
                    last = f": {self.stderr_tail[-1]}" if self.stderr_tail else ""
                    reason = f"the server process ended before it was ready{last}"
                self._connect_failed(reason, reset_era=True)
            else:
                # Shown while it comes back ("restarting: ..."), until an attempt says otherwise.
                self.error = _describe(exc)
                logger.debug("server %s: session ended: %s", self.name, self.error)
        finally:
            self._client = None
            self._lane = None
            self._budget = None
        if ready_since is not None:
            self.restarts += 1
        return ready_since

    def _became_ready(self, client: Client, tools: tuple[types.Tool, ...]) -> None:
        self._client = client
        self.protocol_version = client.protocol_version
        if self._mode == "auto":
            if self.protocol_version in MODERN_PROTOCOL_VERSIONS:
                self._mode = self.protocol_version
                self._prior_discover = client.session.discover_result
            else:
                self._mode = "legacy"
        self.tools = tools
        self.state = "ready"
        self.error = None
        self._reported = ("ready", None)
        self._listed.set()
        logger.info("server %s: ready (%d tools, protocol %s)", self.name, len(tools), self.protocol_version)
        self._changed()

    def _report_failure(self, delay: float) -> None:
        """Log a loss or failure when it is news: a new state or error, or the same one again once
        per backoff ceiling, never at every retry."""
        what = (self.state, self.error)
        now = time.monotonic()
        if what == self._reported and now - self._reported_at < MAX_BACKOFF:
            return
        again = what == self._reported
        self._reported, self._reported_at = what, now
        if self.state == "restarting" and self.error is None:
            logger.warning("server %s: lost; restarting in %.0f s", self.name, delay)
        elif self.state == "restarting" and not again:
            logger.warning(
                "server %s: could not restart: %s (retrying in %.0f s)", self.name, self.error, delay
            )
        elif self.state == "restarting":
            logger.warning(
                "server %s: still restarting: %s (next try in %.0f s)", self.name, self.error, delay
            )
        elif not again:
            logger.warning("server %s: failed: %s (retrying in %.0f s)", self.name, self.error, delay)
        else:
            logger.warning("server %s: still failing: %s (next try in %.0f s)", self.name, self.error, delay)

    def _on_authorization_url(self, url: str | None) -> None:
        """The sign-in started (``url``) or its code arrived (``None``)."""
        if url is not None:
            if self.state != "needs_auth":
                self._state_before_auth = self.state
            self.state = "needs_auth"
            how = self.sign_in_hint.format(name=self.name)
            self.error = f"sign in to use this server: {how}"
            if self._budget is not None:
                self._budget.deadline = math.inf  # a person may take a while; nothing retries meanwhile
            logger.warning("server %s: needs sign-in (%s)", self.name, how)
        else:
            self.state = "ready" if self._state_before_auth == "ready" else "connecting"
            self.error = None
            if self._budget is not None and self.state == "connecting":
                self._budget.deadline = anyio.current_time() + self.connect_timeout
            logger.info("server %s: sign-in received", self.name)
        self._changed()

    def _auth_for(self, spec: ServerSpec) -> OAuthClientProvider | None:
        """One provider per spec, kept across reconnects (it holds what discovery found)."""
        if self.vault is None or spec.url is None:
            return None
        if any(name.lower() == "authorization" for name in spec.headers or {}):
            return None  # a static token from the config: its 401 is an error, not a sign-in
        if self._auth is None:
            self._auth = provider_for(ServerTokens(self.vault, self.name, spec.url, spec.oauth), self.sign_in)
        return self._auth

    def _connect_failed(self, error: str, *, reset_era: bool) -> None:
        if self.state != "restarting":
            self.state = "failed"
        self.error = error
        if reset_era:
            # The server may have changed era since; probe again next time.
            self._mode, self._prior_discover = "auto", None

    async def _serve(self, client: Client) -> None:
        """Keep the tool list current until the server is lost."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._refresh_on_request, client)
            if self.protocol_version in MODERN_PROTOCOL_VERSIONS:
                tg.start_soon(self._listen_for_changes, client)
            if self.spec is not None and self.spec.transport != "stdio":
                tg.start_soon(self._watch_liveness, client)
            await self._lost.wait()
            tg.cancel_scope.cancel()
        if self.state == "ready":  # said at once: closing the session may take a moment
            self.state = "restarting"
            self._changed()

    async def _watch_liveness(self, client: Client) -> None:
        """Ping the server now and then; one that does not answer is lost (and reconnected)."""
        while True:
            await anyio.sleep(LIVENESS_INTERVAL)
            try:
                with anyio.fail_after(LIVENESS_TIMEOUT):
                    if self.protocol_version in MODERN_PROTOCOL_VERSIONS:
                        # ping is gone from the 2026-07-28 era; discover is its cheapest request.
                        await client.session.send_discover(self.protocol_version)
                    else:
                        await client.session.send_ping()
                continue  # it answered: it is there
            except MCPError as exc:
                if exc.error.code != types.CONNECTION_CLOSED:
                    continue  # it answered, if only with an error: it is there
                reason = exc.error.message
            except TimeoutError:
                reason = f"no answer to a ping within {LIVENESS_TIMEOUT:g} s"
            except _LOST_ERRORS as exc:
                reason = _describe(exc)
            logger.warning("server %s: lost: %s", self.name, reason)
            self.error = reason
            self._lost.set()
            return

    async def _refresh_on_request(self, client: Client) -> None:
        while True:
            await self._refresh_wanted.wait()
            self._refresh_wanted = anyio.Event()
            try:
                tools = await self._list_tools(client)
                offerings = await list_offerings(client, self.name)
            except MCPError as exc:
                logger.warning("server %s: re-listing tools failed: %s", self.name, exc)
                self._listed.set()
                continue
            except _LOST_ERRORS:
                self._lost.set()
                return
            changed = tools != self.tools
            offerings_changed = offerings != self.offerings
            self.tools = tools
            self.offerings = offerings
            self._listed.set()
            if changed:
                logger.info("server %s: tool list changed (%d tools)", self.name, len(tools))
            if changed or offerings_changed:
                self._changed()

    async def _listen_for_changes(self, client: Client) -> None:
        """On the 2026-07-28 era, list_changed arrives only on a ``subscriptions/listen`` stream."""
        try:
            async with client.listen(
                tools_list_changed=True, resources_list_changed=True, prompts_list_changed=True
            ) as subscription:
                async for _event in subscription:
                    self.request_refresh()
        except (ListenNotSupportedError, MCPError, SubscriptionLost, TimeoutError) as exc:
            logger.debug("server %s: no change notifications: %s", self.name, exc)

    @asynccontextmanager
    async def _open_client(self, spec: ServerSpec) -> AsyncIterator[Client]:
        async with AsyncExitStack() as stack:
            if spec.transport == "stdio":
                assert spec.command is not None
                cwd = self.workspace / spec.cwd if spec.cwd else self.workspace
                self._lane = FastLane()
                transport: Any = stdio_transport(
                    spec.command,
                    spec.args,
                    cwd=cwd,
                    env=self._child_env(spec.env),
                    on_stderr=self._on_stderr,
                    on_closed=self._lost.set,
                    max_line_bytes=self.max_result_bytes,
                    name=self.name,
                    lane=self._lane,
                )
            elif spec.transport == "http":
                assert spec.url is not None
                http = await stack.enter_async_context(
                    client_factory(self.max_result_bytes)(
                        headers=dict(spec.headers or {}), auth=self._auth_of(spec)
                    )
                )
                transport = streamable_http_client(
                    spec.url, http_client=http, max_sse_event_size=self.max_result_bytes + _SSE_FRAMING
                )
            else:
                assert spec.url is not None
                factory = client_factory(
                    self.max_result_bytes, sse_line_limit=sse_line_limit(self.max_result_bytes)
                )
                transport = sse_client(
                    spec.url,
                    headers=dict(spec.headers or {}),
                    httpx_client_factory=factory,
                    auth=self._auth_of(spec),
                )
            client = Client(
                transport,
                mode=self._mode,
                prior_discover=self._prior_discover,
                message_handler=self._on_message,
                elicitation_callback=self._on_elicitation,
                sampling_callback=self._on_sampling,
                client_info=_CLIENT_INFO,
                cache=None,
            )
            yield await stack.enter_async_context(client)

    def _auth_of(self, spec: ServerSpec) -> HeadersHelperAuth | OAuthClientProvider | None:
        """A headers helper brings its own credentials (as a static header does); else OAuth."""
        return self._headers_helper(spec) or self._auth_for(spec)

    def _headers_helper(self, spec: ServerSpec) -> HeadersHelperAuth | None:
        """A new one per connection: each (re)connect runs the helper afresh."""
        if spec.headers_helper is None:
            return None
        return HeadersHelperAuth(
            spec.headers_helper, cwd=self.workspace, env=self._child_env(None), server=self.name
        )

    async def _list_tools(self, client: Client) -> tuple[types.Tool, ...]:
        tools: list[types.Tool] = []
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES):
            page = await client.session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
            tools.extend(page.tools)
            if not page.next_cursor or page.next_cursor == cursor:
                break
            cursor = page.next_cursor
        return tuple(tools)

    async def _on_message(self, message: Any) -> None:
        if isinstance(
            message,
            types.ToolListChangedNotification
            | types.ResourceListChangedNotification
            | types.PromptListChangedNotification,
        ):
            self.request_refresh()
        elif isinstance(message, types.LoggingMessageNotification | types.ResourceUpdatedNotification):
            if self._on_notice is not None:
                self._on_notice(self.name, message)
        elif isinstance(message, Exception):
            logger.debug("server %s: transport: %s", self.name, _describe(message))

    async def _on_elicitation(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        """A 2025-era ``elicitation/create``: to the one call in flight, else declined."""
        call = self._only_call()
        if isinstance(call, _Call):
            return await call.ask(params)
        logger.info("server %s: a request for input was declined: %s", self.name, call)
        return declined(call)

    async def _on_sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.ErrorData:
        """A 2025-era ``sampling/createMessage``: to the one call in flight (its caller may offer a
        model: an MCP client of the gateway), else refused."""
        call = self._only_call()
        return await call.sample(params) if isinstance(call, _Call) else no_sampling(call)

    def _only_call(self) -> _Call | str:
        """The call a 2025-era server's request during a call is for: the protocol does not say,
        so it is the call in flight when there is exactly one; otherwise why none can be told."""
        calls = list(self._calls)
        if len(calls) == 1:
            return calls[0]
        if not calls:
            return "no tool call is in flight on this server"
        return f"{len(calls)} tool calls are in flight on this server; the request cannot be told apart"

    def _on_stderr(self, line: str) -> None:
        line = redact(line)  # the tail is shown in status and the UI: no credentials a server prints
        self.stderr_tail.append(line)
        logger.debug("server %s stderr: %s", self.name, line)  # shown with -v; status keeps the tail

    def _changed(self) -> None:
        self._on_change()

    # ---- used by other tasks --------------------------------------------------------------------

    def request_refresh(self) -> None:
        self._refresh_wanted.set()

    async def refresh(self, timeout: float) -> None:
        """Re-list this server's tools and wait (at most ``timeout``) for the new list."""
        if self.state != "ready":
            return
        self._listed = anyio.Event()
        self.request_refresh()
        with anyio.move_on_after(timeout):
            await self._listed.wait()

    async def call(
        self, tool: str, arguments: dict[str, Any], timeout: float, hooks: CallHooks = NO_HOOKS
    ) -> types.CallToolResult:
        """Call ``tool``; ``hooks`` get its progress and the server's requests for input."""
        result = await self._call(tool, arguments, timeout, hooks, raw=False)
        assert isinstance(result, types.CallToolResult)
        return result

    async def call_wire(
        self, tool: str, arguments: dict[str, Any], timeout: float, hooks: CallHooks = NO_HOOKS
    ) -> dict[str, Any]:
        """As :meth:`call`, answered as the call-tool response body; a plain result is passed
        through from its JSON-RPC dict, never built as models (``content.raw_result_to_dict``)."""
        result = await self._call(tool, arguments, timeout, hooks, raw=True)
        return result if isinstance(result, dict) else result_to_dict(result)

    async def read_resource(self, uri: str, timeout: float) -> types.ReadResourceResult:
        request = types.ReadResourceRequest(params=types.ReadResourceRequestParams(uri=uri))
        return await self.send(request, types.ReadResourceResult, timeout, f"resource {uri!r}")

    async def get_prompt(
        self, prompt: str, arguments: dict[str, str], timeout: float
    ) -> types.GetPromptResult:
        request = types.GetPromptRequest(
            params=types.GetPromptRequestParams(name=prompt, arguments=arguments)
        )
        return await self.send(request, types.GetPromptResult, timeout, f"prompt {prompt!r}")

    async def complete(
        self,
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: types.CompletionArgument,
        context: types.CompletionContext | None,
        timeout: float,
    ) -> types.CompleteResult:
        params = types.CompleteRequestParams(ref=ref, argument=argument, context=context)
        return await self.send(
            types.CompleteRequest(params=params), types.CompleteResult, timeout, "completion"
        )

    async def set_logging_level(self, level: types.LoggingLevel, timeout: float) -> bool:
        """Ask the server for log messages from ``level`` up; False when it offers no logging."""
        capabilities = self._ready_client().session.server_capabilities
        if capabilities is None or capabilities.logging is None:
            return False
        request = types.SetLevelRequest(params=types.SetLevelRequestParams(level=level))
        await self.send(request, types.EmptyResult, timeout, "the logging level")
        return True

    async def subscribe(self, uri: str, timeout: float, *, subscribe: bool = True) -> None:
        """Ask to be told (``notifications/resources/updated``) when ``uri`` changes, or no longer."""
        request: types.ClientRequest
        if subscribe:
            request = types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri))
        else:
            request = types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri=uri))
        await self.send(request, types.EmptyResult, timeout, f"a subscription to {uri!r}")

    async def send(
        self, request: types.ClientRequest, result_type: type[_Result], timeout: float, what: str
    ) -> _Result:
        """One request other than a tool call, its failures mapped to :class:`HubError` (``what``
        names it)."""
        client = self._ready_client()
        try:
            return await client.session.send_request(
                request, result_type, request_read_timeout_seconds=timeout
            )
        except _MAPPED_ERRORS as exc:
            raise self._failure(exc, what, timeout, f"a result for {what} that is not valid") from exc

    def _lose(self) -> None:
        """A call found the server gone: said at once, before the call is answered (a caller that
        looks next sees it restarting, not ready); the owner task closes and reconnects."""
        self._lost.set()
        if self.state == "ready":
            self.state = "restarting"
            self._changed()

    def _ready_client(self) -> Client:
        client = self._client
        if client is None or self.state != "ready":
            reason = f": {self.error}" if self.error else ""
            raise ServerUnavailable(f"server {self.name!r} is {self.state}{reason}")
        return client

    def _failure(self, exc: BaseException, what: str, timeout: float, invalid: str) -> HubError:
        """One request's failure (one of ``_MAPPED_ERRORS``, from the SDK or the transport) as a
        :class:`HubError`; a server found gone is marked lost on the way (``_lose``). A plain
        function rather than a context manager: it costs nothing on a call that succeeds."""
        if isinstance(exc, MCPError):
            if is_oversize(exc.error):
                return ResultTooLarge(f"{what} on server {self.name!r}: {exc.error.message}")
            if exc.error.code == RESOURCE_NOT_FOUND:
                return NotFound(f"{what} on server {self.name!r}: {exc.error.message}")
            if exc.error.code == types.REQUEST_TIMEOUT:
                return CallTimeout(
                    f"{what} on server {self.name!r} did not answer within {timeout:g} s"
                    " (the server was sent notifications/cancelled)"
                )
            if exc.error.code == types.CONNECTION_CLOSED:
                self._lose()
                return ServerUnavailable(f"server {self.name!r} closed the connection during the call")
            return UpstreamError(
                f"server {self.name!r} answered with an error: {exc.error.message} (code {exc.error.code})"
            )
        if isinstance(exc, InputRequiredRoundsExceededError):
            return UpstreamError(
                f"server {self.name!r} asked for input more than {exc.max_rounds} times in one call"
            )
        if isinstance(exc, ValidationError):
            return UpstreamError(f"server {self.name!r} sent {invalid}: {exc.error_count()} problems")
        self._lose()
        return ServerUnavailable(f"server {self.name!r} is unreachable: {_describe(exc)}")

    async def _call(
        self, tool: str, arguments: dict[str, Any], timeout: float, hooks: CallHooks, *, raw: bool
    ) -> types.CallToolResult | dict[str, Any]:
        client = self._ready_client()
        call = _Call(self.name, tool, hooks)
        self._calls.append(call)
        try:
            first: types.CallToolResult | types.InputRequiredResult | dict[str, Any]
            if raw:
                first = await self._send_passed_through(client, call, arguments, timeout)
            else:
                first = await self._send_call(client, call, arguments, timeout)
            if isinstance(first, types.CallToolResult | dict):
                return first

            async def dispatch(
                key: str, request: types.InputRequest
            ) -> types.InputResponse | types.ErrorData:
                if isinstance(request, types.ElicitRequest):
                    return await call.ask(request.params)
                if isinstance(request, types.CreateMessageRequest):
                    return await call.sample(request.params)
                # Roots are not offered: the SDK's callback refuses them.
                context = ClientRequestContext(session=client.session, request_id=key)
                return await client.session.dispatch_input_request(context, request)

            async def retry(
                responses: types.InputResponses | None, state: str | None
            ) -> types.CallToolResult | types.InputRequiredResult:
                return await self._send_call(client, call, arguments, timeout, responses, state)

            return await run_input_required_driver(first, dispatch=dispatch, retry=retry)
        except _MAPPED_ERRORS as exc:
            raise self._failure(
                exc, f"tool {tool!r}", timeout, "a result that is not a valid tool result"
            ) from exc
        finally:
            self._calls.remove(call)

    async def _send_passed_through(
        self, client: Client, call: _Call, arguments: dict[str, Any], timeout: float
    ) -> types.CallToolResult | types.InputRequiredResult | dict[str, Any]:
        """The first ``tools/call`` round, a plain result answered as the wire dict."""
        lane = self._lane
        if lane is not None and call.hooks.on_progress is None and not tracing():
            # A stdio server's call that wants no progress (and no trace span): below the session.
            params, _ = _stamped_call(client.session, call.tool, arguments)
            result = await lane.request("tools/call", params, timeout)
        else:
            result = await _send_raw_call(
                client.session, call.tool, arguments, timeout, call.hooks.on_progress
            )
        wire = raw_result_to_dict(result)
        # Not the plain shape (input_required, or something to refuse): the models' way.
        return wire if wire is not None else _validated_call_result(client.session, result)

    async def _send_call(
        self,
        client: Client,
        call: _Call,
        arguments: dict[str, Any],
        timeout: float,
        responses: types.InputResponses | None = None,
        state: str | None = None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        params = types.CallToolRequestParams(
            name=call.tool, arguments=arguments, input_responses=responses, request_state=state
        )
        # Not ClientSession.call_tool: it validates structuredContent against the tool's
        # outputSchema (and may re-list to do so); a proxy passes results through as they are.
        return await client.session.send_request(
            types.CallToolRequest(params=params),
            _CALL_RESULT,
            request_read_timeout_seconds=timeout,
            progress_callback=call.hooks.on_progress,
        )


async def _send_raw_call(
    session: ClientSession,
    tool: str,
    arguments: dict[str, Any],
    timeout: float,
    on_progress: ProgressFnT | None,
) -> dict[str, Any]:
    """``ClientSession.send_request`` for ``tools/call`` without its two validations of the result
    (the session's own steps otherwise: its era's stamp, the Mcp-Name header, timeout, progress);
    its protocol errors, timeout and cancellation are the dispatcher's, exactly as there."""
    params, opts = _stamped_call(session, tool, arguments)
    opts["timeout"] = timeout
    headers = opts.setdefault("headers", {})
    if MCP_NAME_HEADER not in headers:
        headers[MCP_NAME_HEADER] = encode_header_value(tool)
    if on_progress is not None:
        opts["on_progress"] = on_progress
    return await session._dispatcher.send_raw_request("tools/call", params, opts)


def _stamped_call(
    session: ClientSession, tool: str, arguments: dict[str, Any]
) -> tuple[dict[str, Any], CallOptions]:
    """A ``tools/call``'s params and options as the session stamps them for its era."""
    data: dict[str, Any] = {"method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    opts: CallOptions = {}
    session._stamp(data, opts)
    params: dict[str, Any] = data["params"]
    return params, opts


def _validated_call_result(
    session: ClientSession, raw: dict[str, Any]
) -> types.CallToolResult | types.InputRequiredResult:
    """A raw ``tools/call`` result checked and parsed exactly as ``send_request`` does."""
    _clamp_inbound_ttl(raw)
    version = session.protocol_version or "2025-11-25"
    with suppress(KeyError):
        _methods.validate_server_result("tools/call", version, raw)
    if not (foreign := _later_revision_fields("tools/call", version)).isdisjoint(raw):
        raw = {key: value for key, value in raw.items() if key not in foreign}
    return _CALL_RESULT.validate_python(raw, by_name=False)


class _Call:
    """A call in flight, and where its requests for input go."""

    def __init__(self, server: str, tool: str, hooks: CallHooks) -> None:
        self.server = server
        self.tool = tool
        self.hooks = hooks

    async def ask(self, params: types.ElicitRequestParams) -> types.ElicitResult:
        if self.hooks.ask is None:
            logger.info(
                "server %s: tool %s asked for input; declined: %s", self.server, self.tool, CANNOT_ASK
            )
            return declined(CANNOT_ASK)
        return await self.hooks.ask(params)

    async def sample(
        self, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.ErrorData:
        if self.hooks.sample is None:
            logger.info(
                "server %s: tool %s asked for sampling; refused: its caller offers none",
                self.server,
                self.tool,
            )
            return no_sampling("the caller of this tool offers no model")
        return await self.hooks.sample(params)


def _describe(exc: BaseException) -> str:
    """A one-line reason, looking through exception groups to the first real cause."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, httpx2.HTTPStatusError):
        return _describe_status(exc.response)
    if isinstance(exc, httpx2.TransportError) and (request := _request_of(exc)) is not None:
        text = f"{request.method} {shown_url(request.url)}: {str(exc) or type(exc).__name__}"
    else:
        text = str(exc) or type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) < 500 else text[:500] + "…"


def _request_of(exc: httpx2.TransportError) -> httpx2.Request | None:
    try:
        return exc.request
    except RuntimeError:  # raised without one
        return None


def _describe_status(response: httpx2.Response) -> str:
    """An error answer to the legacy SSE transport's requests (it raises on them)."""
    request = response.request
    if response.is_redirect and (location := response.headers.get("location")):
        target = shown_url(request.url.join(location))
        return (
            f"{request.method} {shown_url(request.url)} redirected to {target}; not followed: a server's "
            "headers go to its own origin only (use that URL if it is the intended server)"
        )
    return explain_status(response.status_code, response.reason_phrase, request.method, request.url)
