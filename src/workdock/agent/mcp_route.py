"""``/mcp``: the agent's catalog as one streamable-HTTP MCP endpoint (the SDK's session manager).

The bearer token is checked by the agent's middleware, as on every route. A browser page can
reach a loopback agent (DNS rebinding), so a request whose ``Origin`` is not the agent's own
address or loopback is refused with 403 before the MCP transport sees it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import anyio
import orjson
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import Receive, Scope, Send

from workdock.mcp.gateway import Gateway
from workdock.mcp.hub import Hub

MCP_PATH = "/mcp"
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


class McpEndpoint:
    """The ASGI app behind ``/mcp``; :meth:`running` is entered by the agent's lifespan."""

    def __init__(self, hub: Hub, *, listen_host: str, max_request_bytes: int) -> None:
        self.gateway = Gateway(hub)
        self.listen_host = listen_host
        self.manager = StreamableHTTPSessionManager(
            app=self.gateway.server, max_request_body_size=max_request_bytes
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.manager.run(), anyio.create_task_group() as tg:
            tg.start_soon(self.gateway.tell_changes)
            try:
                yield
            finally:
                self.gateway.close()
                tg.cancel_scope.cancel()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"origin"), None)
        if not origin_allowed(origin, self.listen_host):
            body = orjson.dumps(
                {
                    "message": "origin not allowed",
                    "detail": f"requests from {origin} are refused: only the agent's own address and "
                    "loopback may use /mcp from a browser (DNS rebinding protection)",
                }
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.manager.handle_request(scope, receive, send)
