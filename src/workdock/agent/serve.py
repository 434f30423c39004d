"""Run the agent until SIGTERM/SIGINT, then shut everything down within seconds.

Three ways in: the local HTTP API (``--listen``), the agent link to a chat server (``--server``),
or both. Over the link the agent opens no listening socket at all.
"""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Iterator
from functools import partial
from typing import Literal

import anyio
import uvicorn
from fastapi import FastAPI

from workdock.agent.app import create_app
from workdock.agent.call_route import HotPathApp
from workdock.agent.fast_call import fast_call_protocol
from workdock.agent.runtime import AgentSettings
from workdock.link.dialer import LinkSettings, run_link

# In-flight requests get this long on shutdown; a call stuck on a hung server must not hold the exit.
GRACEFUL_SHUTDOWN_SECONDS = 2


def uvicorn_server(
    settings: AgentSettings,
    *,
    log_level: str = "warning",
    app: FastAPI | None = None,
    lifespan: Literal["on", "off"] = "on",
) -> uvicorn.Server:
    app = app or create_app(settings)
    # The plain call-tool's happy path is answered by the HTTP protocol itself (agent/fast_call.py).
    fast = app.fast_call if isinstance(app, HotPathApp) else None
    config = uvicorn.Config(
        app,
        http=fast_call_protocol(fast) if fast is not None else "auto",
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
        # No proxy in front of an agent: X-Forwarded-For from any peer (localhost included) is
        # ignored, so a token guesser cannot pose as many addresses.
        proxy_headers=False,
        log_config=None,  # our own format and secret redaction (workdock.logs)
        lifespan=lifespan,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return uvicorn.Server(config)


@contextlib.contextmanager
def _no_signal_capture() -> Iterator[None]:
    yield  # serve_linked_agent handles the signals for the link and the HTTP server alike


async def serve_agent(
    settings: AgentSettings, *, sock: socket.socket | None = None, log_level: str = "warning"
) -> None:
    """Serve until a signal arrives (uvicorn handles SIGTERM and SIGINT), on ``sock`` when the
    caller bound it (``workdock.listen.bind``), else on the settings' host and port."""
    await uvicorn_server(settings, log_level=log_level).serve(sockets=[sock] if sock else None)


async def serve_linked_agent(
    settings: AgentSettings, link: LinkSettings, *, sock: socket.socket | None, log_level: str = "warning"
) -> int:
    """Keep the link to the chat server up (and serve HTTP too on ``sock``, bound by the caller)
    until a signal arrives or the link must stop; returns the exit status (0 after a signal)."""
    app = create_app(settings)
    status = 0
    stop = anyio.Event()
    link_scope, signal_scope = anyio.CancelScope(), anyio.CancelScope()

    async def keep_linked() -> None:
        nonlocal status
        with link_scope:
            status = await run_link(app, link)
        stop.set()

    async def until_signal() -> None:
        with signal_scope, anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                break
        stop.set()

    # The lifespan (hub, config watcher, processes) runs here, once, for both ways in.
    async with app.router.lifespan_context(app), anyio.create_task_group() as tg:
        tg.start_soon(until_signal)
        tg.start_soon(keep_linked)
        server: uvicorn.Server | None = None
        if sock is not None:
            server = uvicorn_server(settings, log_level=log_level, app=app, lifespan="off")
            server.capture_signals = _no_signal_capture  # type: ignore[method-assign]
            tg.start_soon(partial(server.serve, sockets=[sock]))
        await stop.wait()
        link_scope.cancel()
        signal_scope.cancel()
        if server is not None:
            server.should_exit = True  # it closes its socket and connections, then returns
    return status
