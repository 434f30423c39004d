"""Run the agent's HTTP server until SIGTERM/SIGINT, then shut everything down within seconds."""

from __future__ import annotations

import socket

import uvicorn

from workdock.agent.app import create_app
from workdock.agent.runtime import AgentSettings

# In-flight requests get this long on shutdown; a call stuck on a hung server must not hold the exit.
GRACEFUL_SHUTDOWN_SECONDS = 2


def uvicorn_server(settings: AgentSettings, *, log_level: str = "warning") -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return uvicorn.Server(config)


async def serve_agent(
    settings: AgentSettings, *, sock: socket.socket | None = None, log_level: str = "warning"
) -> None:
    """Serve until a signal arrives (uvicorn handles SIGTERM and SIGINT), on ``sock`` when the
    caller bound it (``workdock.listen.bind``), else on the settings' host and port."""
    await uvicorn_server(settings, log_level=log_level).serve(sockets=[sock] if sock else None)
