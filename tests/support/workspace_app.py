"""A small app serving only the workspace operations, over real HTTP, for their tests.

It is built the way the agent builds its own (error handlers, the token middleware, a
lifespan that shuts the process table down) and runs under uvicorn in a thread of its own, so the
server's event loop is not the test's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import anyio
import uvicorn
from fastapi import FastAPI

from tests.support.helpers import free_port
from workdock.agent.auth import BearerAuth
from workdock.agent.workspace import ProcessTable, workspace_router
from workdock.http_errors import install_error_handlers

TOKEN = "workspace-test-token"
T = TypeVar("T")


@dataclass
class WorkspaceServer:
    url: str
    root: Path
    table: ProcessTable
    _server: uvicorn.Server
    _thread: threading.Thread

    def stop(self) -> None:
        """Stop serving; the lifespan's shutdown ends every process the table started."""
        self._server.should_exit = True
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the workspace server did not stop within 30 s"


def workspace_app(root: Path, table: ProcessTable, token: str = TOKEN) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await table.shutdown()

    app = FastAPI(lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(BearerAuth, token=token)
    app.include_router(workspace_router(root, table))
    return app


@contextmanager
def serve_workspace(root: Path, table: ProcessTable | None = None) -> Iterator[WorkspaceServer]:
    """Serve the workspace operations for ``root`` on 127.0.0.1 until the block ends."""
    table = table or ProcessTable()
    port = free_port()
    # As in the agent: in-flight requests (a running command) get 2 s on stop, then are cancelled.
    config = uvicorn.Config(
        workspace_app(root, table),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="workspace-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise AssertionError("the workspace server did not start")
        time.sleep(0.01)
    running = WorkspaceServer(
        url=f"http://127.0.0.1:{port}", root=root, table=table, _server=server, _thread=thread
    )
    try:
        yield running
    finally:
        running.stop()


async def wait_until(
    predicate: Callable[[], T | Awaitable[T]], timeout: float = 10, message: str = "condition"
) -> T:
    """Poll ``predicate`` (sync or async) until it is truthy and return its value; fail at the deadline."""
    deadline = anyio.current_time() + timeout
    while True:
        value = predicate()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if anyio.current_time() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        await anyio.sleep(0.02)
