"""The hot path: a plain JSON ``POST /api/v0/mcp/call-tool``, answered by raw ASGI.

A call is what a chat turn does most, and FastAPI's middleware stack, routing and request object
cost as much CPU as the MCP round trip itself; so this request is answered before all that, by
its own short chain: the same token check and body limit (the same instances' settings and the
same failed-attempt counter), then :class:`CallToolEndpoint`. Everything else goes through
FastAPI, a streaming call-tool (``Accept: text/event-stream``) included; the route there stays
the documented one (OpenAPI).
The answers are the route's: the same parsing, the same statuses, the one error shape, and a
caller that hangs up cancels the call upstream (499).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from workdock.agent.disconnect import until_disconnect
from workdock.agent.mcp_route import is_mcp_path
from workdock.agent.streaming import EVENT_STREAM
from workdock.http_errors import ApiError, HTTPApiError
from workdock.mcp.hub import Hub, HubError
from workdock.memory import give_back

if TYPE_CHECKING:
    from workdock.agent.fast_call import FastCallRoute

logger = logging.getLogger(__name__)

CALL_TOOL_PATH = "/api/v0/mcp/call-tool"
EVENT_STREAM_BYTES = EVENT_STREAM.encode()
_JSON_HEADERS = [(b"content-type", b"application/json")]

MAX_TIMEOUT_MS = 600_000


def parse_call_request(raw: bytes) -> tuple[str, dict[str, Any], int | None]:
    """Validate a call-tool body: (tool_name, arguments, timeout_ms) or an ApiError 400."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "the body is not JSON", str(exc)) from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    tool_name = body.get("tool_name")
    if not isinstance(tool_name, str) or not tool_name:
        raise ApiError(400, "tool_name is required and must be a non-empty string")
    arguments = body.get("arguments")
    if arguments is None:
        arguments = {}
    elif not isinstance(arguments, dict):
        raise ApiError(400, "arguments must be a JSON object")
    timeout_ms = body.get("timeout_ms")
    if timeout_ms is not None and (
        isinstance(timeout_ms, bool)
        or not isinstance(timeout_ms, int)
        or not 0 < timeout_ms <= MAX_TIMEOUT_MS
    ):
        raise ApiError(400, f"timeout_ms must be a positive integer of at most {MAX_TIMEOUT_MS}")
    return tool_name, arguments, timeout_ms


async def call_result(hub: Hub, tool_name: str, arguments: dict[str, Any], timeout_ms: int | None) -> bytes:
    """The 200 body of a parsed call-tool request, or the ApiError to answer."""
    timeout = timeout_ms / 1000 if timeout_ms is not None else None
    try:
        result = await hub.call_wire(tool_name, arguments, timeout)
    except HubError as exc:
        raise ApiError(exc.status, exc.message) from None
    return orjson.dumps(result)


async def call_body(hub: Hub, raw: bytes, receive: Receive) -> bytes:
    """The 200 body for a plain call-tool request body ``raw``, or the ApiError to answer."""
    tool_name, arguments, timeout_ms = parse_call_request(raw)
    # If the caller hangs up (a chat turn interrupted), the call is cancelled upstream too.
    return await until_disconnect(receive, call_result(hub, tool_name, arguments, timeout_ms))


def failed_call(exc: Exception) -> tuple[int, bytes, dict[str, str] | None]:
    """The answer (status, body, extra headers) to a call-tool request that raised ``exc``."""
    if isinstance(exc, ApiError):
        return exc.status, error_body(exc.message, exc.detail), exc.headers
    if isinstance(exc, HTTPApiError):  # the body limit, raised while the body is read
        return exc.status_code, error_body(str(exc.detail), exc.explanation), None
    # A bug, logged as one; the caller still gets the one error shape (as from FastAPI).
    logger.error("call-tool failed", exc_info=exc)
    return 500, error_body("internal error", "the server failed to answer; see its log"), None


def json_headers(body: bytes, extra: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    """The headers of a call-tool answer ``body`` (uvicorn adds ``date`` and ``server``)."""
    headers = [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    return [*_JSON_HEADERS, *headers, (b"content-length", str(len(body)).encode())]


def is_plain_call(scope: Scope) -> bool:
    """A call-tool request that wants the plain JSON answer (not ``text/event-stream``)."""
    return (
        scope["type"] == "http"
        and scope["path"] == CALL_TOOL_PATH
        and scope["method"] == "POST"
        and not asks_for_events(scope["headers"])
    )


class CallToolEndpoint:
    """The ASGI app that answers a plain call-tool request (behind the token and body checks)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await call_body(self.hub, await _read_body(receive), receive)
        except Exception as exc:
            await _answer(send, *failed_call(exc))
            return
        await _answer(send, 200, body, None)
        give_back(len(body))


class HotPathApp(FastAPI):
    """FastAPI with the plain call-tool (and the MCP endpoint) answered before its middleware
    stack and routing.

    ``hot_path`` is that request's whole ASGI chain (token check, body limit, endpoint); every
    other request, a streaming call-tool included, goes through FastAPI as usual.
    """

    hot_path: ASGIApp | None = None
    # /mcp and /mcp/SERVER: the MCP endpoint's own chain (token check, endpoint), likewise.
    mcp_path: ASGIApp | None = None
    # What the agent's HTTP protocol needs to answer ``hot_path``'s happy path before ASGI.
    fast_call: FastCallRoute | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.hot_path is not None and is_plain_call(scope):
            await self.hot_path(scope, receive, send)
            return
        if self.mcp_path is not None and scope["type"] == "http" and is_mcp_path(scope["path"]):
            await self.mcp_path(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def asks_for_events(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the request asks for the streamed answer (``Accept: text/event-stream``)."""
    return any(name == b"accept" and EVENT_STREAM_BYTES in value for name, value in headers)


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(499, "client closed the request")
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


def error_body(message: str, detail: str | None) -> bytes:
    return orjson.dumps({"message": message, "detail": detail})


async def _answer(send: Send, status: int, body: bytes, headers: dict[str, str] | None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": json_headers(body, headers)})
    await send({"type": "http.response.body", "body": body})
