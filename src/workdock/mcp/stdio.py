"""The stdio transport: one child process per server, in a process group of its own.

We run our own rather than ``mcp.client.stdio`` because a proxy needs four
things it does not give: the agent's full environment for the child, stderr
read line by line into a tail (never blocking the child), stdout lines that are
not JSON-RPC skipped instead of surfaced as errors, and the *whole process
group* ended on close, so the grandchildren that ``npx``/``uvx``-style wrappers
leave behind die too, even when the wrapper itself exited cleanly.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import anyio
import mcp_types as types
from anyio.abc import ByteReceiveStream, Process
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from workdock.process_groups import end_group

logger = logging.getLogger(__name__)

# After stdin closes a well-behaved server exits by itself; give it this long first.
STDIN_CLOSE_GRACE = 0.5
# Then SIGTERM to the group, and SIGKILL to whatever is left after this.
TERM_GRACE = 2.0
# SIGKILL cannot be refused; this only lets the event loop notice the exit.
KILL_REAP_WAIT = 0.5
_POLL = 0.02
# How often the leader's exit is checked, and how long its stdout may still drain after it.
EXIT_POLL = 0.1
EXIT_DRAIN = 0.5


@asynccontextmanager
async def stdio_transport(
    command: str,
    args: tuple[str, ...],
    *,
    cwd: Path,
    env: Mapping[str, str] | None,
    on_stderr: Callable[[str], None],
    on_closed: Callable[[], None],
) -> AsyncIterator[
    tuple[MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]]
]:
    """Start the server and yield the (read, write) message streams ``mcp.ClientSession`` drives.

    ``on_closed`` is called when the server's stdout ends or its process exits
    (it may be called more than once): the connection's owner uses it to notice
    a dead server.
    """
    child_env = {**os.environ, **(env or {})}
    process = await anyio.open_process(
        [command, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=child_env,
        start_new_session=True,  # its own process group: killpg reaches every descendant
    )
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)

    stdout_done = anyio.Event()

    async def pump_stdout() -> None:
        assert process.stdout is not None
        try:
            async with read_writer:
                async for line in _lines(process.stdout):
                    message = _parse(line)
                    if message is None:
                        logger.info("%s: skipped a stdout line that is not JSON-RPC: %.200s", command, line)
                        continue
                    await read_writer.send(message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the session is gone; nothing left to deliver to
        finally:
            stdout_done.set()
            on_closed()

    async def watch_exit() -> None:
        """A server whose process exited is gone, even if a leftover child still holds its stdout open."""
        while process.returncode is None:
            await anyio.sleep(EXIT_POLL)
        with anyio.move_on_after(EXIT_DRAIN):
            await stdout_done.wait()  # let its last answers through first
        await read_writer.aclose()
        on_closed()

    async def pump_stdin() -> None:
        assert process.stdin is not None
        try:
            async with write_reader:
                async for message in write_reader:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await process.stdin.send(data.encode() + b"\n")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            # The child stopped reading (it died): make the session see the end.
            await read_writer.aclose()

    async def pump_stderr() -> None:
        assert process.stderr is not None
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            async for line in _lines(process.stderr):
                on_stderr(line)

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump_stdout)
        tg.start_soon(pump_stdin)
        tg.start_soon(pump_stderr)
        tg.start_soon(watch_exit)
        try:
            yield read_stream, write_stream
        finally:
            with anyio.CancelScope(shield=True):
                await _stop(process)
                for stream in (read_stream, write_stream, read_writer, write_reader):
                    await stream.aclose()
            tg.cancel_scope.cancel()


async def _lines(stream: ByteReceiveStream) -> AsyncIterator[str]:
    """Decoded lines of ``stream`` without their newline (undecodable bytes replaced)."""
    pending: list[bytes] = []  # a partial line, kept as chunks so a huge message is joined once
    while True:
        try:
            chunk = await stream.receive()
        except anyio.EndOfStream:
            break
        if b"\n" not in chunk:
            pending.append(chunk)
            continue
        pending.append(chunk)
        *complete, rest = b"".join(pending).split(b"\n")
        pending = [rest] if rest else []
        for raw in complete:
            yield raw.decode("utf-8", "replace").rstrip("\r")
    if pending:
        yield b"".join(pending).decode("utf-8", "replace").rstrip("\r")


def _parse(line: str) -> SessionMessage | None:
    if not line.strip():
        return None
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except (ValidationError, ValueError):
        return None


async def _stop(process: Process) -> None:
    """Close stdin, give the server a moment, then end its whole process group (TERM, then KILL).

    Every wait is bounded (a few seconds at worst), so one hung server cannot hold up shutdown.
    """
    if process.stdin is not None:
        with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await process.stdin.aclose()
    await _wait(lambda: process.returncode is not None, STDIN_CLOSE_GRACE)
    # The group even when the leader already exited: its grandchildren may not have.
    await end_group(process.pid, TERM_GRACE)  # the leader of its own session: its pid is the group id
    await _wait(lambda: process.returncode is not None, KILL_REAP_WAIT)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await pipe.aclose()


async def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    with anyio.move_on_after(timeout):
        while not condition():
            await anyio.sleep(_POLL)
        return True
    return condition()
