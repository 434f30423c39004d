"""The stdio transport: one child process per server, in a process group of its own.

We run our own rather than ``mcp.client.stdio`` because a proxy needs five
things it does not give: the environment the caller chose for the child,
stderr read line by line into a tail (never blocking the child), stdout lines
that are not JSON-RPC skipped instead of surfaced as errors, a bound on how
long one line may be (a line over it is dropped as it arrives, and the call it
answered gets an error saying so), and the *whole process group* ended on
close, so the grandchildren that ``npx``/``uvx``-style wrappers leave behind
die too, even when the wrapper itself exited cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import orjson
from anyio.abc import ByteReceiveStream, ByteSendStream, Process
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from workdock.mcp.fast_lane import FastLane
from workdock.mcp.limits import LineSplitter, Oversize, describe_oversize, oversize_error
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
MAX_BATCH = 64  # messages joined into one write to the server's stdin
_RESPONSE_KEYS = {"jsonrpc", "id", "result"}
# A stderr line is for people: longer ones are cut to this in the tail and the log.
STDERR_LINE_LIMIT = 8 * 1024


class StartError(Exception):
    """The server process could not be started; the message says why (command, directory)."""


@asynccontextmanager
async def stdio_transport(
    command: str,
    args: tuple[str, ...],
    *,
    cwd: Path,
    env: Mapping[str, str],
    on_stderr: Callable[[str], None],
    on_closed: Callable[[], None],
    max_line_bytes: int,
    name: str | None = None,
    lane: FastLane | None = None,
) -> AsyncIterator[
    tuple[MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]]
]:
    """Start the server and yield the (read, write) message streams ``mcp.ClientSession`` drives.

    ``env`` is the child's whole environment. ``on_closed`` is called when the
    server's stdout ends or its process exits (it may be called more than once):
    the connection's owner uses it to notice a dead server. A stdout line over
    ``max_line_bytes`` is dropped; the request it answered gets an error.
    ``name`` (the server's) is what the log calls it; by default its command. ``lane``, when
    given, is attached to this process: its requests go out with the session's messages, and the
    answers to them go to it instead of the session (``fast_lane``); it is closed when the server is.
    """
    who = f"server {name}" if name else command
    try:
        process = await anyio.open_process(
            [command, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,  # its own process group: killpg reaches every descendant
        )
    except OSError as exc:
        raise StartError(_start_failure(command, cwd, env, exc)) from exc
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    # The session's messages go out through one pump (and its batching); the lane writes its
    # lines to the pipe itself, and through the pump only where the pipe is not asyncio's.
    # Buffered, so that a line is put in without a task switch while the pump writes.
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage | bytes](MAX_BATCH)

    def closed() -> None:
        on_closed()  # the owner hears of it first, then the calls
        if lane is not None:
            lane.close()  # its calls fail now, as the session's do when its stream ends

    if lane is not None:
        lane.attach(write_stream, _asyncio_writer(process.stdin), closed)

    stdout_done = anyio.Event()

    async def pump_stdout() -> None:
        assert process.stdout is not None
        try:
            async with read_writer:
                async for lines in _lines(process.stdout, LineSplitter(max_line_bytes)):
                    for line in lines:
                        if isinstance(line, Oversize):
                            if not await dropped(line):
                                return
                            continue
                        data = _loads(line)  # each line is parsed once
                        if lane is None or not lane.answer(data):  # (a lane answer: no await)
                            await deliver(line, data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the session is gone; nothing left to deliver to
        finally:
            stdout_done.set()
            closed()

    async def deliver(line: bytes, data: Any) -> None:
        """Pass one stdout line (``data``: what :func:`_loads` read of it) on to the session."""
        message = _parse(line, data)
        if message is None:
            logger.info("%s: skipped a stdout line that is not JSON-RPC: %.200r", who, line)
        else:
            await read_writer.send(message)

    async def dropped(line: Oversize) -> bool:
        """Tell whoever waits for a line that was too long; False when the session must end."""
        what = describe_oversize(line.size, max_line_bytes)
        if line.kind == "method":
            logger.warning("%s: a request or notification was dropped: %s", who, what)
            return True
        request_id = line.request_id
        if request_id is None:
            # No call can be told: end the session, so that none waits for its timeout.
            logger.error("%s: %s; its request id could not be read, so the server is restarted", who, what)
            return False
        logger.warning("%s: the answer to request %r was dropped: %s", who, request_id, what)
        if lane is not None and lane.owns(request_id):
            lane.resolve(request_id, oversize_error(line.size, max_line_bytes))
            return True
        error = types.JSONRPCError(
            jsonrpc="2.0", id=request_id, error=oversize_error(line.size, max_line_bytes)
        )
        await read_writer.send(SessionMessage(error))
        return True

    async def watch_exit() -> None:
        """A server whose process exited is gone, even if a leftover child still holds its stdout open."""
        while process.returncode is None:
            await anyio.sleep(EXIT_POLL)
        with anyio.move_on_after(EXIT_DRAIN):
            await stdout_done.wait()  # let its last answers through first
        await read_writer.aclose()
        closed()

    async def pump_stdin() -> None:
        assert process.stdin is not None
        try:
            async with write_reader:
                async for message in write_reader:
                    # Calls in flight together go out in one write: a pipe write is a syscall
                    # and a wake-up of the server, the largest part of a call's CPU here.
                    lines = [_line(message)]
                    with suppress(anyio.WouldBlock, anyio.EndOfStream):
                        while len(lines) < MAX_BATCH:
                            lines.append(_line(write_reader.receive_nowait()))
                    await process.stdin.send(b"".join(lines))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            # The child stopped reading (it died): make the session see the end.
            await read_writer.aclose()
            closed()

    async def pump_stderr() -> None:
        assert process.stderr is not None
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            async for lines in _lines(process.stderr, LineSplitter(STDERR_LINE_LIMIT)):
                for line in lines:
                    on_stderr(_stderr_text(line))

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump_stdout)
        tg.start_soon(pump_stdin)
        tg.start_soon(pump_stderr)
        tg.start_soon(watch_exit)
        try:
            yield read_stream, write_stream
        finally:
            if lane is not None:
                lane.close()  # no call waits on a server that is being stopped
            with anyio.CancelScope(shield=True):
                await _stop(process)
                for stream in (read_stream, write_stream, read_writer, write_reader):
                    await stream.aclose()
            tg.cancel_scope.cancel()


def _asyncio_writer(stdin: ByteSendStream | None) -> asyncio.StreamWriter | None:
    """The asyncio pipe under anyio's stdin stream, for the lane to write to without a task
    (anyio keeps it as ``_stream``); None on anything else: the lane then goes through the pump."""
    writer = getattr(stdin, "_stream", None)
    return writer if isinstance(writer, asyncio.StreamWriter) else None


def _line(message: SessionMessage | bytes) -> bytes:
    if isinstance(message, bytes):
        return message  # the lane's line, written by orjson with its newline
    return message.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"


async def _lines(stream: ByteReceiveStream, splitter: LineSplitter) -> AsyncIterator[list[bytes | Oversize]]:
    """The lines of each chunk read from ``stream`` (split by ``splitter``), and at its end what
    was left."""
    while True:
        try:
            chunk = await stream.receive()
        except anyio.EndOfStream:
            break
        yield splitter.feed(chunk)
    yield splitter.end()


def _stderr_text(line: bytes | Oversize) -> str:
    if isinstance(line, Oversize):
        return f"{line.head.decode('utf-8', 'replace')}… [a line of {line.size} bytes, cut]"
    return line.decode("utf-8", "replace").rstrip("\r")


def _loads(line: bytes) -> Any:
    """The line as orjson reads it; None when it is not JSON (or is JSON ``null``)."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        pass
    try:  # JSON with bytes that are not UTF-8: read it with them replaced, as the session would
        return orjson.loads(line.decode("utf-8", "replace"))
    except orjson.JSONDecodeError:
        return None


def _parse(line: bytes, data: Any) -> SessionMessage | None:
    """The line as the session's message; ``data`` is what :func:`_loads` made of it."""
    if not line.strip():
        return None
    if (response := _plain_response(data)) is not None:
        return response
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except (ValidationError, ValueError):
        pass
    try:  # JSON-RPC with bytes that are not UTF-8: read it with them replaced
        text = line.decode("utf-8", "replace")
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(text, by_name=False))
    except (ValidationError, ValueError):
        return None


def _plain_response(data: Any) -> SessionMessage | None:
    """A result answer (most of what a server sends) read by orjson, without the adapter's model
    pass: checked field by field as the ``JSONRPCResponse`` model would be, its ``result`` kept as
    the dict it is (the model holds it as ``dict[str, Any]`` too). Anything else returns None and
    goes the adapter's way."""
    if not isinstance(data, dict) or data.keys() != _RESPONSE_KEYS or data["jsonrpc"] != "2.0":
        return None
    request_id, result = data["id"], data["result"]
    if isinstance(request_id, bool) or not isinstance(request_id, int | str) or not isinstance(result, dict):
        return None
    return SessionMessage(types.JSONRPCResponse.model_construct(jsonrpc="2.0", id=request_id, result=result))


def _start_failure(command: str, cwd: Path, env: Mapping[str, str], exc: OSError) -> str:
    """Why the process did not start, naming what to fix (uvloop's errors carry no file name)."""
    if not cwd.is_dir():
        what = "does not exist" if not cwd.exists() else "is not a directory"
        return f"the working directory {cwd} {what} (the server's cwd)"
    if isinstance(exc, FileNotFoundError):
        if "/" in command:
            return f"command not found: {command} (no such file, or its #! interpreter is missing; in {cwd})"
        return f"command not found: {command} (looked up on PATH: {env.get('PATH', '')})"
    if isinstance(exc, PermissionError):
        return f"cannot run {command}: permission denied (is it executable?)"
    return f"cannot run {command}: {exc.strerror or exc}"


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
