"""``/mcp``: the agent's catalog as one streamable-HTTP MCP endpoint (the SDK's session manager),
and ``/mcp/{server}``: one server under its own names (``--only`` of ``workdock mcp``).

The bearer token is checked by the agent's middleware, as on every route. A browser page can
reach a loopback agent (DNS rebinding), so a request whose ``Origin`` is not the agent's own
address or loopback is refused with 403 before the MCP transport sees it. A POST's body is read
here, within the agent's body limit (413 in the one error shape, with or without a
Content-Length), then answered by the lean path (:mod:`workdock.agent.mcp_lean`) when it is a
plain tool call, else handed to the SDK as it came.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import orjson
from anyio.abc import TaskGroup, TaskStatus
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import Message, Receive, Scope, Send

from workdock.agent.mcp_lean import Lean, LeanCalls
from workdock.http_errors import HTTPApiError
from workdock.http_limits import too_large
from workdock.mcp.gateway import Gateway
from workdock.mcp.hub import Hub

MCP_PATH = "/mcp"


def is_mcp_path(path: str) -> bool:
    return path == MCP_PATH or path.startswith(MCP_PATH + "/")


_WILDCARDS = {"", "0.0.0.0", "::"}


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin_allowed(origin: str | None, listen_host: str) -> bool:
    """No Origin (not a browser), a loopback one, or the agent's own listen address.

    The request's Host header is no proof: a rebinding page's Host and Origin are both its own
    name, so only the address the agent was told to listen on counts as its own."""
    if origin is None:
        return True
    host = urlsplit(origin).hostname
    if host is None:
        return False  # "null" (a sandboxed page, a file) and anything unreadable
    if _is_loopback(host):
        return True
    return listen_host not in _WILDCARDS and host == listen_host.strip("[]").lower()


@dataclass
class _Served:
    """One gateway (the whole catalog, or one server's) and its session manager."""

    gateway: Gateway
    manager: StreamableHTTPSessionManager
    lean: LeanCalls


class McpEndpoint:
    """The ASGI app behind ``/mcp`` (the catalog) and ``/mcp/{server}`` (one server, as it names
    things); :meth:`running` is entered by the agent's lifespan."""

    def __init__(self, hub: Hub, *, listen_host: str, max_request_bytes: int, max_sessions: int) -> None:
        self.hub = hub
        self.listen_host = listen_host
        self.max_request_bytes = max_request_bytes
        self.max_sessions = max_sessions  # on each path (each has its own session manager)
        # One per configured server ever asked for, made on first use: bounded by the config.
        self._served: dict[str | None, _Served] = {}
        self._task_group: TaskGroup | None = None
        self._starting = anyio.Lock()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            self._task_group = tg
            await self._serve(None)
            try:
                yield
            finally:
                for served in self._served.values():
                    served.gateway.close()
                tg.cancel_scope.cancel()
                self._task_group = None

    async def _serve(self, only: str | None) -> _Served:
        async with self._starting:
            if (served := self._served.get(only)) is not None:
                return served
            assert self._task_group is not None, "the endpoint is not running"
            gateway = Gateway(self.hub, only)
            manager = StreamableHTTPSessionManager(
                app=gateway.server,
                max_request_body_size=self.max_request_bytes,
                max_sessions=self.max_sessions,
            )
            served = _Served(gateway, manager, LeanCalls(gateway, manager))
            await self._task_group.start(self._run, served)
            self._served[only] = served
            return served

    @staticmethod
    async def _run(served: _Served, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with served.manager.run(), anyio.create_task_group() as tg:
            tg.start_soon(served.gateway.tell_changes)
            task_status.started()
            await anyio.sleep_forever()

    def plan(self, scope: Scope, body: bytes) -> Lean | None:
        """How the lean path answers this POST (its body read), or None where it is this app's to
        answer (a refused origin, an unknown server, anything but a plain call): the agent's HTTP
        protocol asks, and gives the request to uvicorn when the answer is None."""
        origin = _origin(scope)
        only = _only(scope["path"])
        served = self._served.get(only)
        if served is None or not origin_allowed(origin, self.listen_host):
            return None
        if only is not None and only not in self.hub.server_names:
            return None  # gone from the configuration since: the 404 is __call__'s
        return served.lean.plan(scope, body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = _origin(scope)
        if not origin_allowed(origin, self.listen_host):
            detail = (
                f"requests from {origin} are refused: only the agent's own address and loopback may "
                "use /mcp from a browser (DNS rebinding protection)"
            )
            await _answer(send, 403, "origin not allowed", detail)
            return
        # /mcp or /mcp/SERVER (answered before FastAPI's routing: see HotPathApp)
        only = _only(scope["path"])
        if only is not None and only not in self.hub.server_names:
            await _answer(send, 404, f"no server named {only!r}", "see GET /api/v0/mcp/servers")
            return
        served = self._served.get(only) or await self._serve(only)
        if scope["method"] == "POST":
            try:
                body = await _read_body(scope, receive, self.max_request_bytes)
            except HTTPApiError as exc:
                await _answer(send, exc.status_code, str(exc.detail), exc.explanation or "")
                return
            if body is None:
                return  # the client hung up before its request was complete
            if await served.lean.answer(scope, body, receive, send):
                return
            receive = _replayed(body, receive)
        await served.manager.handle_request(scope, receive, send)


def _origin(scope: Scope) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == b"origin"), None)


def _only(path: str) -> str | None:
    """The server a path of the endpoint fronts alone (``/mcp/SERVER``); None for ``/mcp``."""
    return path.removeprefix(MCP_PATH).removeprefix("/") or None


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole body, refused (413) once it is over ``limit``: a declared length before anything
    is read, a chunked body as soon as it passes it. None: the client hung up."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if not value.isdigit() or int(value) > limit:
                raise too_large(limit)
            break
    parts: list[bytes] = []
    seen = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        part = message.get("body", b"")
        seen += len(part)
        if seen > limit:
            raise too_large(limit)
        parts.append(part)
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


def _replayed(body: bytes, receive: Receive) -> Receive:
    """``receive`` with the body already read given once more, for the SDK's transport."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer(send: Send, status: int, message: str, detail: str) -> None:
    body = orjson.dumps({"message": message, "detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
