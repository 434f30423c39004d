"""A loopback HTTP forwarder that adds ``Authorization: Bearer <token>`` to every request.

For a client that cannot be given headers (the conformance suite's server mode takes a URL
only): it reaches the agent's ``/mcp`` as a configured client would. Requests and responses
pass through unchanged otherwise (Host and Origin included), and responses stream, so SSE
arrives as it is sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx2
import uvicorn
from starlette.types import Receive, Scope, Send

from .helpers import free_port, wait_until

_HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"authorization"}


class _Forward:
    def __init__(self, target: str, token: str, http: httpx2.AsyncClient) -> None:
        self.target, self.token, self.http = target, token, http

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP_BY_HOP]
        headers.append((b"authorization", f"Bearer {self.token}".encode()))
        query = scope.get("query_string", b"").decode()
        url = self.target + scope["path"] + (f"?{query}" if query else "")
        request = self.http.build_request(scope["method"], url, headers=headers, content=body)
        response = await self.http.send(request, stream=True)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k.encode(), v.encode())
                        for k, v in response.headers.multi_items()
                        if k.lower().encode() not in _HOP_BY_HOP
                    ],
                }
            )
            async with anyio.create_task_group() as tg:

                async def until_disconnect() -> None:
                    # A client that went away ends the upstream stream too (an idle SSE GET
                    # would otherwise be read forever).
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(until_disconnect)
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                tg.cancel_scope.cancel()
        finally:
            await response.aclose()


@asynccontextmanager
async def bearer_forwarder(target: str, token: str) -> AsyncIterator[str]:
    """Forward ``http://127.0.0.1:<port>`` to ``target`` with the token; yields the base URL."""
    port = free_port()
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(60, read=None)) as http:
        config = uvicorn.Config(
            _Forward(target, token, http),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve)
            await wait_until(lambda: server.started, timeout=30, message="the forwarder to listen")
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True
