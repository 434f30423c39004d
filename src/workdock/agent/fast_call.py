"""The plain call-tool answered by the agent's HTTP protocol, before uvicorn builds an ASGI request.

A chat turn's tool calls are the agent's hot request, and even with FastAPI skipped
(``call_route.HotPathApp``) most of the CPU it costs is uvicorn's ASGI request cycle: the scope,
the cycle object, its messages and awaits. This subclass of uvicorn's httptools protocol answers
the requests that matter on their happy path itself: a ``POST /api/v0/mcp/call-tool`` with
nothing unusual about it, the right token and a body ``parse_call_request`` takes, and a
``tools/call`` POSTed to ``/mcp`` (or ``/mcp/SERVER``) that the MCP endpoint's lean path would
answer (``McpEndpoint.plan``). It runs the same code as the ASGI route (``call_result``, or the
lean path's own) in one task and writes the answer, with uvicorn's default headers (``date``,
``server``), straight to the transport; a hang-up cancels that task.

Everything else is uvicorn's own path, unchanged: a request that is not a candidate never leaves
it, and a candidate that fails a check once its body is in (a body that does not parse) is
replayed into it, so its answer is the ASGI route's. When in doubt, it falls back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar

from starlette.types import Scope
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from workdock.agent.auth import BearerAuth
from workdock.agent.call_route import (
    CALL_TOOL_PATH,
    EVENT_STREAM_BYTES,
    call_result,
    failed_call,
    json_headers,
    parse_call_request,
)
from workdock.agent.mcp_lean import Lean, unguarded
from workdock.agent.mcp_route import McpEndpoint
from workdock.http_errors import ApiError
from workdock.mcp.hub import Hub
from workdock.memory import give_back
from workdock.ratelimit import client_address

# The exact request targets: a query string, %-escapes or an absolute URI are uvicorn's to parse.
_TARGET = CALL_TOOL_PATH.encode()
_MCP = b"/mcp"
_MCP_SERVER = b"/mcp/"
logger = logging.getLogger(__name__)

# uvicorn's answer for a request whose app it had to cancel (RequestResponseCycle.send_500_response).
_CANCELLED_BODY = b"Internal Server Error"
_CANCELLED_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(_CANCELLED_BODY)).encode()),
]


@dataclass(frozen=True)
class FastCallRoute:
    """What the protocol shares with the app: its hub, the call-tool chain's own token check
    (the same token and failed-attempt counter) and the body limit."""

    hub: Hub
    auth: BearerAuth
    max_bytes: int
    mcp: McpEndpoint | None = None  # its lean path, for /mcp (the same token and limit)


class _NoEvent:
    """uvicorn's connection_lost sets its cycle's event; nothing waits on a fast call's."""

    def set(self) -> None:
        pass


class _FastCall:
    """One fast request, from its headers to its answer.

    It sits in uvicorn's ``cycle`` slot with the fields uvicorn reads there, so uvicorn's own
    bookkeeping applies to it: a request pipelined behind it is queued (and started when this one
    calls ``on_response_complete``), ``shutdown()`` lets it finish and then close
    (``keep_alive``), ``connection_lost`` marks it ``disconnected``.
    """

    message_event = _NoEvent()

    def __init__(self, before: Any, keep_alive: bool, mcp: bool) -> None:
        self.before = before  # what the cycle slot held (a finished cycle or None), for a replay
        self.keep_alive = keep_alive
        self.mcp = mcp  # a POST to the MCP endpoint, not call-tool
        self.response_complete = False
        self.disconnected = False
        self.parts: list[bytes] = []
        self.task: asyncio.Task[None] | None = None


class FastCallProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the plain call-tool answered on its happy path."""

    route: ClassVar[FastCallRoute]
    _reading: _FastCall | None = None  # a candidate whose body is arriving
    _calling: _FastCall | None = None  # a call in flight

    def on_headers_complete(self) -> None:
        if self._is_candidate():
            keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
            fast = _FastCall(self.cycle, keep_alive, self.url != _TARGET)
            self._reading = fast
            self.cycle = fast  # type: ignore[assignment]  # duck-typed: see _FastCall
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._reading is not None:
            self._reading.parts.append(body)  # bounded: Content-Length was checked
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        fast = self._reading
        if fast is None:
            super().on_message_complete()
            return
        self._reading = None
        raw = fast.parts[0] if len(fast.parts) == 1 else b"".join(fast.parts)
        work: Coroutine[Any, Any, None]
        if fast.mcp:
            lean = self._mcp_plan(raw)
            if lean is None:  # not the lean path's: the endpoint answers it, through uvicorn
                self._replay(fast)
                return
            work = self._serve_mcp(fast, lean)
        else:
            try:
                call = parse_call_request(raw)
            except ApiError:
                # Bad JSON or fields: the route answers it (the same 400, from the same parser).
                self._replay(fast)
                return
            work = self._serve(fast, *call)
        fast.before = None
        self._calling = fast
        fast.task = task = self.loop.create_task(work)
        # uvicorn's graceful shutdown waits for these tasks, then cancels them.
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        fast = self._calling
        if fast is not None and fast.task is not None:
            # The caller hung up (an interrupted chat turn): the hub tells the server it is cancelled.
            fast.disconnected = True
            fast.task.cancel()

    def _is_candidate(self) -> bool:
        """A request this protocol may answer itself; anything unusual is left to uvicorn."""
        mcp = self.url == _MCP or self.url.startswith(_MCP_SERVER)
        if mcp and (self.route.mcp is None or b"?" in self.url or b"%" in self.url):
            return False
        if (
            (self.url != _TARGET and not mcp)
            or self.parser.get_method() != b"POST"
            or self.parser.should_upgrade()
            or self.expect_100_continue  # uvicorn writes the 100 when the app reads
            or (self.cycle is not None and not self.cycle.response_complete)  # pipelined: queued in order
            or self.root_path
            or self.limit_concurrency is not None  # its 503 is uvicorn's
            or self.access_log  # its lines are uvicorn's
            or self.config.reset_contextvars
        ):
            return False
        # One pass over the headers for all that is checked in them.
        length: int | None = None
        authorization: bytes | None = None
        for name, value in self.headers:
            if name == b"content-length":
                if length is not None or not value.isdigit() or len(value) > 18:
                    return False
                length = int(value)
            elif name == b"authorization":
                if authorization is None:  # (the first one counts, as for the ASGI chain)
                    authorization = value
            elif name == b"transfer-encoding":
                return False
            elif name == b"accept" and not mcp and EVENT_STREAM_BYTES in value:
                return False  # call-tool's streamed answer (an MCP client accepts both, always)
        if length is None or length > self.route.max_bytes:
            return False
        # The right token from an address that is not blocked; any other case is the ASGI
        # chain's, which answers 401 or 429 and counts the failure.
        return self.route.auth.admits(authorization, client_address(self.scope))

    def _mcp_plan(self, raw: bytes) -> Lean | None:
        """The MCP endpoint's lean answer to this request, if it has one (see McpEndpoint.plan)."""
        assert self.route.mcp is not None  # (a candidate only with an endpoint)
        path = self.url.decode("ascii")
        # The scope the endpoint reads, as uvicorn's on_headers_complete would finish it.
        scope: Scope = self.scope  # type: ignore[assignment]  # (uvicorn's HTTPScope: a dict)
        scope["method"], scope["path"], scope["raw_path"], scope["query_string"] = "POST", path, self.url, b""
        return self.route.mcp.plan(scope, raw)

    def _replay(self, fast: _FastCall) -> None:
        """Hand the request held back to uvicorn's own cycle, as if it had never been looked at."""
        self.cycle = fast.before
        super().on_headers_complete()
        for part in fast.parts:
            super().on_body(part)
        super().on_message_complete()
        if not fast.keep_alive:  # shutdown() asked while the body arrived
            self.cycle.keep_alive = False

    async def _serve(
        self, fast: _FastCall, tool_name: str, arguments: dict[str, Any], timeout_ms: int | None
    ) -> None:
        try:
            try:
                body = await call_result(self.route.hub, tool_name, arguments, timeout_ms)
                status, extra = 200, None
            except asyncio.CancelledError:
                if not fast.disconnected:
                    # Shutdown gave up on the call: what uvicorn answers for an app it cancelled.
                    fast.keep_alive = False
                    self._send(fast, 500, _CANCELLED_HEADERS, _CANCELLED_BODY)
                raise  # (after a hang-up there is nobody to answer)
            except Exception as exc:  # HubError statuses, or a bug: the route's answer to it
                status, body, extra = failed_call(exc)
            if self.flow.write_paused and not fast.disconnected:
                await self.flow.drain()  # the transport's buffer is full: wait, as uvicorn does
            self._send(fast, status, json_headers(body, extra), body)
        finally:
            self._calling = None
        if status == 200:
            give_back(len(body))

    async def _serve_mcp(self, fast: _FastCall, lean: Lean) -> None:
        answer = _Answer()
        try:
            try:
                await lean(answer.send, unguarded)  # a hang-up cancels this task: no watcher needed
            except asyncio.CancelledError:
                if not fast.disconnected:
                    fast.keep_alive = False
                    self._send(fast, 500, _CANCELLED_HEADERS, _CANCELLED_BODY)
                raise
            except Exception:  # a bug: what uvicorn answers for an app that raised
                logger.exception("/mcp: the lean path failed")
                answer.status, answer.headers, answer.body = 500, _CANCELLED_HEADERS, _CANCELLED_BODY
            if self.flow.write_paused and not fast.disconnected:
                await self.flow.drain()
            self._send(fast, answer.status, answer.headers, answer.body)
        finally:
            self._calling = None

    def _send(self, fast: _FastCall, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """The answer as uvicorn's cycle writes it: status line, its default headers, ours."""
        if fast.disconnected or self.transport.is_closing():
            return
        out = [STATUS_LINE[status]]
        for name, value in (*self.server_state.default_headers, *headers):
            out += (name, b": ", value, b"\r\n")
        if not fast.keep_alive:
            out.append(b"connection: close\r\n")
        out += (b"\r\n", body)
        self.transport.write(b"".join(out))
        fast.response_complete = True
        if not fast.keep_alive:
            self.transport.close()
        self.on_response_complete()  # the next pipelined request, or the keep-alive timer


class _Answer:
    """What the lean path sends as ASGI messages (one start, one body), kept for one write."""

    status = 500
    headers: list[tuple[bytes, bytes]] = _CANCELLED_HEADERS
    body = _CANCELLED_BODY  # (if it sent nothing: it never does)

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.status, self.headers = message["status"], list(message.get("headers", ()))
        elif message["type"] == "http.response.body":
            self.body = message.get("body", b"")


def fast_call_protocol(route: FastCallRoute) -> type[FastCallProtocol]:
    """The protocol class for uvicorn's ``Config(http=...)``, bound to one app's ``route``."""
    return type("AgentHttpProtocol", (FastCallProtocol,), {"route": route})
