"""``workdock mcp``: the workspace's servers as one MCP server over stdio, for clients that launch
servers as commands (Claude Code's, Cursor's and VS Code's configs).

The same hub, config reading, trust gate and lifecycle as ``workdock agent``, in this process,
with no HTTP. stdout is the protocol: everything else goes to stderr.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

import anyio
from mcp.server.stdio import stdio_server

from workdock.agent.runtime import AgentRuntime, AgentSettings, new_hub
from workdock.mcp.gateway import Gateway
from workdock.mcp.hub import Hub

logger = logging.getLogger(__name__)

# The first listing a client asks for right after connecting waits this long at most for servers
# still connecting; later ones arrive with notifications/tools/list_changed.
SETTLE_SECONDS = 10.0


class _StdinLines:
    """stdin's lines, read without a thread so that a signal can end the server at once.

    The SDK reads stdin in a worker thread that cancellation cannot interrupt: SIGTERM would wait
    for the client's next line, and the client's SIGKILL would then leave our servers running.
    The wire gets a private descriptor; fd 0 points at the null device, so nothing else reads it.
    """

    def __init__(self, max_line_bytes: int) -> None:
        self._fd = os.dup(0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.set_blocking(self._fd, False)
        self._buffer = b""
        self._max = max_line_bytes

    def __aiter__(self) -> _StdinLines:
        return self

    async def __anext__(self) -> str:
        while (end := self._buffer.find(b"\n")) < 0:
            await anyio.wait_readable(self._fd)
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                if not self._buffer:
                    raise StopAsyncIteration
                chunk = b"\n"  # a last line without its newline
            self._buffer += chunk
            if len(self._buffer) > self._max and b"\n" not in chunk:
                logger.warning("a message over %d bytes on stdin was dropped", self._max)
                self._buffer = b""
        line, self._buffer = self._buffer[: end + 1], self._buffer[end + 1 :]
        return line.decode("utf-8", errors="replace")

    def close(self) -> None:
        os.close(self._fd)


async def serve_stdio(settings: AgentSettings, only: str | None = None) -> None:
    """Serve until stdin ends or SIGTERM/SIGINT arrives; then every server is stopped.

    The signal handler stays installed until every server is stopped: a client's SIGTERM that
    arrives during the shutdown must not cut it short (and leave its children running)."""
    hub = new_hub(settings)
    runtime = AgentRuntime(settings=settings, hub=hub)
    gateway = Gateway(hub, only)
    serving = anyio.CancelScope()
    stdin = _StdinLines(settings.max_request_bytes)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as watcher:

            async def until_signal() -> None:
                async for _ in signals:
                    serving.cancel()

            watcher.start_soon(until_signal)
            try:
                with serving:
                    await _serve(hub, runtime, gateway, settings, only, stdin)
            finally:
                stdin.close()
                watcher.cancel_scope.cancel()


async def _serve(
    hub: Hub, runtime: AgentRuntime, gateway: Gateway, settings: AgentSettings, only: str | None, stdin: Any
) -> None:
    async with hub, anyio.create_task_group() as tg:
        await runtime.reload()
        if only is not None and only not in {entry.name for entry in runtime.entries}:
            logger.warning("--only %s: no server of that name in the configuration", only)
        if settings.watch:
            tg.start_soon(runtime.watch_config)
        tg.start_soon(gateway.tell_changes)
        await hub.wait_until_settled(min(settings.connect_timeout, SETTLE_SECONDS))
        try:
            async with stdio_server(stdin=stdin) as (read_stream, write_stream):
                server = gateway.server
                await server.run(read_stream, write_stream, server.create_initialization_options())
        finally:
            runtime.stop_watching()
            gateway.close()
            tg.cancel_scope.cancel()
