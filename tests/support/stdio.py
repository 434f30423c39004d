"""A stdio MCP transport for tests that records what the server really did.

`mcp.client.stdio.stdio_client` hides the process: a test cannot see its exit
code, its stderr, or the raw lines it wrote on stdout. `StdioServer` starts the
server in its own process group (like the agent must), keeps every stdout and
stderr line, skips stdout lines that are not JSON-RPC (recording them), and on
exit stops the whole group and asserts nothing of it is left.

    async with StdioServer([sys.executable, script], env={...}) as server:
        async with mcp.Client(server.transport(), mode="legacy") as client:
            ...
        assert server.non_json_lines == [...]
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import mcp_types as types
from anyio.streams.text import TextReceiveStream
from mcp.client._transport import TransportStreams
from mcp.shared.message import SessionMessage

from . import processes


class StdioServer:
    """One stdio server process (a new process group) and a record of its output."""

    def __init__(
        self,
        args: Sequence[str | os.PathLike[str]],
        *,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        exit_grace: float = 2.0,
    ) -> None:
        """`env` is laid over this process's environment; `exit_grace` is how long to
        wait for the server to leave by itself after stdin closes before killing the group."""
        self.args = [os.fspath(a) for a in args]
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.exit_grace = exit_grace
        self.stdout_lines: list[str] = []
        self.non_json_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.sent: list[dict[str, Any]] = []  # every JSON-RPC message a client wrote
        self._process: anyio.abc.Process | None = None
        self._cm: Any = None
        self._incoming_send, self._incoming = anyio.create_memory_object_stream[SessionMessage | Exception](
            math.inf
        )

    @property
    def process(self) -> anyio.abc.Process:
        assert self._process is not None, "StdioServer is not started"
        return self._process

    @property
    def pid(self) -> int:
        return self.process.pid

    async def __aenter__(self) -> StdioServer:
        self._cm = self._run()
        await self._cm.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return await self._cm.__aexit__(exc_type, exc, tb)

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[None]:
        self._process = await anyio.open_process(
            self.args, env=self.env, cwd=self.cwd, start_new_session=True
        )
        pgid = self._process.pid  # start_new_session: the leader's pid is the group id
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._read_stdout)
            tg.start_soon(self._read_stderr)
            try:
                yield
            finally:
                with anyio.CancelScope(shield=True):
                    await self.close_stdin()
                    await self.wait_exit(self.exit_grace)
                    await anyio.to_thread.run_sync(processes.stop_group, pgid)
                    with anyio.move_on_after(2.0):  # reap the leader so no zombie is left
                        await self._process.wait()
                tg.cancel_scope.cancel()
        await self._process.aclose()
        processes.assert_group_gone(pgid)

    async def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        buffer = ""
        try:
            async for chunk in TextReceiveStream(self.process.stdout, errors="replace"):
                lines = (buffer + chunk).split("\n")
                buffer = lines.pop()
                for line in lines:
                    self._on_stdout_line(line)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        finally:
            if buffer:
                self._on_stdout_line(buffer)
            self._incoming_send.close()

    def _on_stdout_line(self, line: str) -> None:
        self.stdout_lines.append(line)
        try:
            message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        except ValueError:
            # What the agent must do too: note the line and carry on.
            self.non_json_lines.append(line)
            return
        try:
            self._incoming_send.send_nowait(SessionMessage(message))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the client has gone; keep draining and recording stdout

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        buffer = ""
        try:
            async for chunk in TextReceiveStream(self.process.stderr, errors="replace"):
                lines = (buffer + chunk).split("\n")
                buffer = lines.pop()
                self.stderr_lines.extend(lines)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        finally:
            if buffer:
                self.stderr_lines.append(buffer)

    async def close_stdin(self) -> None:
        """Close the server's stdin (the polite MCP stdio shutdown)."""
        if self.process.stdin is not None:
            try:
                await self.process.stdin.aclose()
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass

    async def wait_exit(self, timeout: float) -> int | None:
        """The leader's exit code, or None if it is still running after `timeout` seconds."""
        with anyio.move_on_after(timeout):
            while self.process.returncode is None:
                await anyio.sleep(0.01)
        return self.process.returncode

    async def send_raw(self, data: dict[str, Any]) -> None:
        """Write one JSON-RPC message by hand (for servers that never finish a handshake)."""
        assert self.process.stdin is not None
        message = types.jsonrpc_message_adapter.validate_python(data, by_name=False)
        line = message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
        self.sent.append(json.loads(line))
        await self.process.stdin.send(line.encode())

    def transport(self) -> _Transport:
        """A transport for `mcp.Client` over this process; use it for one client."""
        return _Transport(self)

    def stderr_text(self) -> str:
        return "\n".join(self.stderr_lines)


class _Transport:
    """Bridges an `mcp` session to a running `StdioServer`; leaves the process alone on exit."""

    def __init__(self, server: StdioServer) -> None:
        self._server = server
        self._cm: Any = None

    async def __aenter__(self) -> TransportStreams:
        self._cm = self._streams()
        return await self._cm.__aenter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return await self._cm.__aexit__(exc_type, exc, tb)

    @asynccontextmanager
    async def _streams(self) -> AsyncIterator[TransportStreams]:
        server = self._server
        write_send, write_receive = anyio.create_memory_object_stream[SessionMessage](0)

        async def stdin_writer() -> None:
            assert server.process.stdin is not None
            async with write_receive:
                async for message in write_receive:
                    line = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                    server.sent.append(json.loads(line))
                    try:
                        await server.process.stdin.send(line.encode())
                    except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                        # The server is gone; end the session's view of it.
                        server._incoming_send.close()
                        return

        async with anyio.create_task_group() as tg:
            tg.start_soon(stdin_writer)
            try:
                yield server._incoming, write_send
            finally:
                write_send.close()
                tg.cancel_scope.cancel()


def python_server(script: Path, **env: str) -> StdioServer:
    """A `StdioServer` running one of the fixture scripts with this interpreter."""
    return StdioServer([sys.executable, script], env=env)
