"""The hot ``/mcp`` request, answered without the SDK's session machinery.

A client of ``/mcp`` mostly calls tools. Through the SDK each call crosses its transport's
memory streams, the session's task group and a pydantic validation and serialization of every
message both ways, which cost several times the upstream round trip. So one request shape is
answered here, directly with :meth:`Hub.call_wire` and orjson, as ``application/json`` (a valid
answer to a client that accepts JSON and SSE): a POST of one JSON-RPC ``tools/call`` request,
without a progress token, from a client that cannot be asked for input nor offers a model (it
declared neither elicitation nor sampling, so an upstream's request for either is refused, as the
gateway refuses it), either on an established handshake-era session (the session id the SDK's manager issued,
checked as it checks it) or as a 2026-07-28 request (its envelope and headers checked with the
SDK's own functions). A hang-up, and on a session its ``notifications/cancelled``, cancel the
call upstream. Anything else (a progress token, a client that can be asked, initialize, lists,
resources, prompts, GET streams, DELETE, a request the SDK would refuse) goes through the SDK:
:meth:`LeanCalls.answer` returns False.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import cached_property, lru_cache, partial
from typing import Any

import mcp_types as types
import orjson
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp.server.streamable_http import (
    MCP_SESSION_ID_HEADER,
    StreamableHTTPServerTransport,
    check_accept_headers,
)
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    MCP_PARAM_HEADER_PREFIX,
    MCP_PROTOCOL_VERSION_HEADER,
    InboundModernRoute,
    classify_inbound_request,
    find_duplicated_routing_header,
    validate_mcp_param_headers,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from workdock.agent.disconnect import until_disconnect
from workdock.http_errors import ApiError
from workdock.mcp.content import wire_to_raw_result
from workdock.mcp.gateway import NO_ELICITATION, NO_SAMPLING, Gateway, error_of
from workdock.mcp.hooks import CallHooks, declined, no_sampling
from workdock.mcp.hub import HubError

logger = logging.getLogger(__name__)

_SESSION_HEADER_NAME = MCP_SESSION_ID_HEADER.lower()
_SESSION_HEADER = _SESSION_HEADER_NAME.encode()
_VERSION_HEADER = MCP_PROTOCOL_VERSION_HEADER.lower().encode()
_MCP_PARAM = MCP_PARAM_HEADER_PREFIX.lower()
_CANCELLED = -32800  # JSON-RPC's "request cancelled", answered to a call its client cancelled


async def _decline(params: types.ElicitRequestParams) -> types.ElicitResult:
    return declined(NO_ELICITATION)


async def _no_model(params: types.CreateMessageRequestParams) -> types.ErrorData:
    return no_sampling(NO_SAMPLING)


# The lean path serves only clients that declared neither elicitation nor sampling: asked as the
# gateway asks them, they are refused with the same reasons.
_HOOKS = CallHooks(ask=_decline, sample=_no_model)

# What stops the call when its client hangs up: ``until_disconnect`` on the request's ASGI channel,
# or nothing where the HTTP protocol cancels the task itself.
Guard = Callable[[Awaitable[Any]], Awaitable[Any]]
# A request the lean path answers: run with where the answer goes and the guard.
Lean = Callable[[Send, Guard], Awaitable[None]]


def unguarded(work: Awaitable[Any]) -> Awaitable[Any]:
    return work


class _Headers:
    """What the lean path reads of a request's headers: the few a session's call needs read
    from the raw headers at once, all of them decoded only for a 2026-07-28 request."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self._raw: dict[bytes, bytes] = dict(scope["headers"])  # (the last of a name, as ``folded``)

    def _get(self, name: bytes) -> str | None:
        value = self._raw.get(name)
        return None if value is None else value.decode("latin-1")

    @cached_property
    def pairs(self) -> list[tuple[str, str]]:
        return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in self.scope["headers"]]

    @cached_property
    def folded(self) -> dict[str, str]:
        return dict(self.pairs)

    @property
    def session_id(self) -> str | None:
        return self._get(_SESSION_HEADER)

    @property
    def version(self) -> str | None:
        return self._get(_VERSION_HEADER)

    def acceptable(self) -> bool:
        """A JSON body from a client that accepts JSON and SSE (else the SDK answers 406 or 415)."""
        if b"application/json" not in self._raw.get(b"content-type", b""):
            return False
        # The first Accept, as the SDK's check reads it (through starlette's headers).
        accept = next((value for name, value in self.scope["headers"] if name == b"accept"), b"")
        return _accepts_json_and_sse(accept)


@lru_cache(maxsize=64)
def _accepts_json_and_sse(accept: bytes) -> bool:
    """The SDK's own check of an ``Accept`` value (a client sends the same one every time)."""
    has_json, has_sse = check_accept_headers(Request({"type": "http", "headers": [(b"accept", accept)]}))
    return has_json and has_sse


@dataclass(frozen=True)
class _Call:
    request_id: str | int
    name: str
    arguments: dict[str, Any]
    first_round: bool  # no answers to an earlier input_required (2026-07-28)


def _request_id(value: Any) -> str | int | None:
    return (
        value if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)) else None
    )


def parse_call(message: Any) -> _Call | None:
    """A plain ``tools/call`` request (no progress token), or None for anything else."""
    if (
        not isinstance(message, dict)
        or message.get("jsonrpc") != "2.0"
        or message.get("method") != "tools/call"
    ):
        return None
    request_id, params = _request_id(message.get("id")), message.get("params")
    if request_id is None or not isinstance(params, dict):
        return None
    name, arguments, meta = params.get("name"), params.get("arguments"), params.get("_meta")
    if not isinstance(name, str) or not (arguments is None or isinstance(arguments, dict)):
        return None
    if meta is not None and (not isinstance(meta, dict) or meta.get("progressToken") is not None):
        return None  # progress goes to the client over the SDK's SSE stream
    first_round = params.get("requestState") is None and params.get("inputResponses") is None
    return _Call(request_id, name, arguments or {}, first_round)


def parse_cancel(message: Any) -> str | int | None:
    """The request id of a ``notifications/cancelled``, or None for anything else."""
    if not isinstance(message, dict) or message.get("method") != "notifications/cancelled" or "id" in message:
        return None
    params = message.get("params")
    return _request_id(params.get("requestId")) if isinstance(params, dict) else None


class LeanCalls:
    """The lean path of one gateway (``/mcp`` or ``/mcp/SERVER``) and its calls in flight."""

    def __init__(self, gateway: Gateway, manager: StreamableHTTPSessionManager) -> None:
        self.gateway = gateway
        self.manager = manager
        # (session id, the request id as JSON) -> the task answering that call; one entry per
        # request being served, so bounded by the connections the server accepts.
        self._in_flight: dict[tuple[str, bytes], tuple[asyncio.Task[Any], list[bool]]] = {}

    async def answer(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> bool:
        """Answer the request if it is the lean path's (True); False leaves it to the SDK."""
        lean = self.plan(scope, body)
        if lean is None:
            return False
        with suppress(ApiError):  # the client hung up: the call was cancelled, nobody to answer
            await lean(send, partial(until_disconnect, receive))
        return True

    def plan(self, scope: Scope, body: bytes) -> Lean | None:
        """How the lean path answers this request (None: it is the SDK's), decided at once, with
        no await: the agent's HTTP protocol asks before it lets uvicorn have the request."""
        if scope["method"] != "POST":
            return None
        headers = _Headers(scope)
        if headers.session_id is None and headers.version in MODERN_PROTOCOL_VERSIONS:
            return self._plan_modern(headers, body)
        session = self._session_of(scope, headers)
        if session is None:
            return None
        session_id, transport = session
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        call = parse_call(message)
        if call is not None:
            return partial(self._call, session_id, transport, call)
        cancelled = parse_cancel(message)
        if cancelled is not None:
            entry = self._in_flight.get((session_id, orjson.dumps(cancelled)))
            if entry is not None:
                return partial(self._cancel, session_id, entry)
        return None

    def _session_of(
        self, scope: Scope, headers: _Headers
    ) -> tuple[str, StreamableHTTPServerTransport] | None:
        """The established session a request may be answered on here, as the SDK would check it."""
        session_id = headers.session_id
        if session_id is None or not headers.acceptable():
            return None  # no session (the SDK opens one, or refuses); or the SDK answers 406 / 415
        if headers.version is not None and headers.version not in HANDSHAKE_PROTOCOL_VERSIONS:
            return None  # the 2026-07-28 era: the SDK's per-request entry
        transport = self._transport(session_id, scope)
        if transport is None:
            return None
        connection = self.gateway.session(session_id)
        if connection is None:
            return None  # no initialize accepted yet: the SDK says so
        capabilities = connection.client_capabilities
        if capabilities is not None and (capabilities.elicitation or capabilities.sampling) is not None:
            return None  # a client that can be asked or offers a model: the gateway relays to it
        return session_id, transport

    def _plan_modern(self, headers: _Headers, body: bytes) -> Lean | None:
        """A 2026-07-28 ``tools/call``: each POST stands alone. Checked as the SDK's entry checks
        it (the envelope, its headers, Mcp-Param headers); anything it would refuse, it does."""
        if not headers.acceptable():
            return None
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        call = parse_call(message)
        if call is None or not call.first_round:
            return None  # a retry with answers goes to the gateway's relay
        if find_duplicated_routing_header(headers.pairs) is not None:
            return None
        verdict = classify_inbound_request(message, headers=headers.folded)
        if not isinstance(verdict, InboundModernRoute):
            return None
        capabilities = verdict.client_capabilities
        if not isinstance(capabilities, dict) or capabilities.get("elicitation") is not None:
            return None  # one that can be asked is relayed; a malformed one is the SDK's to judge
        if capabilities.get("sampling") is not None:
            return None  # the gateway says why it cannot pass a sampling request on in this era
        if call.arguments or any(name.startswith(_MCP_PARAM) for name in headers.folded):
            schema = self.gateway.input_schema(call.name)
            if schema is not None and validate_mcp_param_headers(schema, call.arguments, headers.folded):
                return None
        return partial(self._modern, call)

    async def _modern(self, call: _Call, send: Send, guard: Guard) -> None:
        try:
            result = await guard(self._result(call))
        except MCPError as exc:
            code = exc.error.code
            body_out = orjson.dumps(_error(call.request_id, code, exc.error.message))
            await _send(send, ERROR_CODE_HTTP_STATUS.get(code, 200), body_out, None)
            return
        result["resultType"] = "complete"  # the era's tag of a final result (as the SDK sends it)
        answer = {"jsonrpc": "2.0", "id": call.request_id, "result": result}
        await _send(send, 200, orjson.dumps(answer), None)

    async def _cancel(
        self, session_id: str, entry: tuple[asyncio.Task[Any], list[bool]], send: Send, guard: Guard
    ) -> None:
        task, by_client = entry
        by_client[0] = True
        task.cancel()
        await _send(send, 202, b"", session_id)

    def _transport(self, session_id: str, scope: Scope) -> StreamableHTTPServerTransport | None:
        # The manager's own tables (no public lookup): a live session, asked for with the
        # credential that opened it (as the manager checks; otherwise it answers 404 itself).
        transport = self.manager._server_instances.get(session_id)
        if transport is None or transport.is_terminated:
            return None
        if transport.idle_scope is not None and transport.idle_scope.cancel_called:
            return None
        user = scope.get("user")
        requestor = authorization_context(user) if isinstance(user, AuthenticatedUser) else None
        if requestor != self.manager._session_owners.get(session_id):
            return None
        return transport

    async def _call(
        self,
        session_id: str,
        transport: StreamableHTTPServerTransport,
        call: _Call,
        send: Send,
        guard: Guard,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        key = (session_id, orjson.dumps(call.request_id))
        by_client = [False]
        self._in_flight[key] = (task, by_client)
        held = _hold(transport)
        try:
            result = await guard(self._result(call))
            body = {"jsonrpc": "2.0", "id": call.request_id, "result": result}
        except MCPError as exc:
            body = _error(call.request_id, exc.error.code, exc.error.message)
        except asyncio.CancelledError:
            if not by_client[0] or task.uncancel() > 0:
                raise
            # The client said it no longer wants the answer: it ignores this one.
            body = _error(call.request_id, _CANCELLED, "the client cancelled the request")
        finally:
            if held:
                _release(transport)
            self._in_flight.pop(key, None)
        await _send(send, 200, orjson.dumps(body), session_id)

    async def _result(self, call: _Call) -> dict[str, Any]:
        name = self.gateway.tool_name(call.name)
        try:
            wire = await self.gateway.hub.call_wire(name, call.arguments, hooks=_HOOKS)
        except HubError as exc:
            raise error_of(exc) from None
        except Exception:
            # A bug, logged as one; the client still gets a JSON-RPC error (as from the SDK).
            logger.exception("tools/call %s failed", name)
            raise MCPError(types.INTERNAL_ERROR, "internal error; see the agent's log") from None
        return wire_to_raw_result(wire)


def _hold(transport: StreamableHTTPServerTransport) -> bool:
    """Count a call as a request in flight on its session, as the transport's own
    ``handle_request`` does, so the idle timeout never ends a session while it is served; True
    when counted (then :func:`_release` it). A plain pair, not a context manager: per call."""
    scope = transport.idle_scope
    if scope is None or transport._idle_timeout is None:
        return False
    transport._requests_in_flight += 1
    if scope.deadline != math.inf:
        scope.deadline = math.inf
    return True


def _release(transport: StreamableHTTPServerTransport) -> None:
    transport._requests_in_flight -= 1
    scope, idle = transport.idle_scope, transport._idle_timeout
    if not transport._requests_in_flight and scope is not None and idle is not None:
        scope.deadline = asyncio.get_running_loop().time() + idle  # (anyio's clock on asyncio)


def _error(request_id: str | int, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


async def _send(send: Send, status: int, body: bytes, session_id: str | None) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if session_id is not None:
        headers.append((_SESSION_HEADER, session_id.encode()))
    if body:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
