"""Run the agent's HTTP server until SIGTERM/SIGINT, then shut everything down within seconds."""

from __future__ import annotations

import uvicorn

from workdock.agent.app import create_app
from workdock.agent.runtime import AgentSettings
from workdock.log_redact import uvicorn_log_config

# In-flight requests get this long on shutdown; a call stuck on a hung server must not hold the exit.
GRACEFUL_SHUTDOWN_SECONDS = 2


def uvicorn_server(settings: AgentSettings, *, log_level: str = "warning") -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
        # No proxy in front of an agent: X-Forwarded-For from any peer (localhost included) is
        # ignored, so a token guesser cannot pose as many addresses.
        proxy_headers=False,
        log_config=uvicorn_log_config(),
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return uvicorn.Server(config)


async def serve_agent(settings: AgentSettings, *, log_level: str = "warning") -> None:
    """Serve until a signal arrives (uvicorn handles SIGTERM and SIGINT)."""
    await uvicorn_server(settings, log_level=log_level).serve()
