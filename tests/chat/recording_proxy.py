"""An HTTP proxy in front of an agent that records what the chat server asked and got back.

It lets tests see the chat server's real traffic (If-None-Match sent, 304 or 200 received)
without reaching into its caches.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_FORWARDED = ("authorization", "content-type", "if-none-match")
_RETURNED = ("content-type", "etag")


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    if_none_match: str | None
    status: int


class RecordingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.exchanges: list[Exchange] = []
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    async def _forward(self, request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k in _FORWARDED}
        async with httpx2.AsyncClient(timeout=60) as client:  # one per request: the proxy is for tests
            answer = await client.request(
                request.method,
                self.upstream + request.url.path,
                params=request.query_params,
                headers=headers,
                content=await request.body(),
            )
        self.exchanges.append(
            Exchange(
                request.method, request.url.path, request.headers.get("if-none-match"), answer.status_code
            )
        )
        return Response(
            answer.content,
            status_code=answer.status_code,
            headers={k: v for k, v in answer.headers.items() if k in _RETURNED},
        )

    def tool_listings(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.path == "/api/v0/mcp/tools"]

    def start(self, port: int) -> RecordingProxy:
        app = Starlette(routes=[Route("/{path:path}", self._forward, methods=["GET", "POST"])])
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        self._thread = threading.Thread(target=self._server.run, name="recording-proxy", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise AssertionError("the recording proxy did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            assert not self._thread.is_alive(), "the recording proxy did not stop"
