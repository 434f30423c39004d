"""``workdock mcp``: the workspace's servers as one MCP server over stdio, for clients that launch
servers as commands (Claude Code's, Cursor's and VS Code's configs).

The same hub, config reading, trust gate and lifecycle as ``workdock agent``, in this process,
with no HTTP. stdout is the protocol: everything else goes to stderr.
"""

from __future__ import annotations

import logging
import signal

import anyio
from mcp.server.stdio import stdio_server

from workdock.agent.runtime import AgentRuntime, AgentSettings, new_hub
from workdock.mcp.gateway import Gateway

logger = logging.getLogger(__name__)

# The first listing a client asks for right after connecting waits this long at most for servers
# still connecting; later ones arrive with notifications/tools/list_changed.
SETTLE_SECONDS = 10.0


async def serve_stdio(settings: AgentSettings, only: str | None = None) -> None:
    """Serve until stdin ends or SIGTERM/SIGINT arrives; then every server is stopped."""
    hub = new_hub(settings)
    runtime = AgentRuntime(settings=settings, hub=hub)
    gateway = Gateway(hub, only)
    async with hub, anyio.create_task_group() as tg:

        async def until_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(until_signal)
        await runtime.reload()
        if only is not None and only not in {entry.name for entry in runtime.entries}:
            logger.warning("--only %s: no server of that name in the configuration", only)
        if settings.watch:
            tg.start_soon(runtime.watch_config)
        tg.start_soon(gateway.tell_changes)
        await hub.wait_until_settled(min(settings.connect_timeout, SETTLE_SECONDS))
        try:
            async with stdio_server() as (read_stream, write_stream):
                server = gateway.server
                await server.run(read_stream, write_stream, server.create_initialization_options())
        finally:
            runtime.stop_watching()
            gateway.close()
            tg.cancel_scope.cancel()
