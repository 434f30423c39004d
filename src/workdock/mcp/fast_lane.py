"""The fast lane: a stdio server's plain ``tools/call`` sent and answered below the SDK session.

Through ``ClientSession`` every call builds a pydantic request model and serialises it, passes
two memory streams and the dispatcher's read loop, opens a memory stream of its own for its
answer, and every answer is validated as a ``JSONRPCMessage``: together most of the agent's CPU
per call (py-spy under the call-tool benchmark). On the lane the request line is written by
orjson straight to the server's stdin (the lines of one turn of the event loop in one write, no
task in between; through the transport's stdin pump where the pipe is not asyncio's), and the
transport's reader, which parses each stdout line once, hands an answer whose id is a lane id
straight to its waiting call as the raw dict. Everything else the server sends (its requests,
notifications, answers to the session) goes to the session as before.

What the session's path keeps, the lane keeps: the era's stamp (the caller stamps the params
with the session's own ``_stamp``), a timeout and a caller that gives up each send
``notifications/cancelled`` for the id, a server that ends fails every call at once with the
SDK's ``CONNECTION_CLOSED``, and the errors are the SDK's :class:`MCPError` with the same codes.
Calls that want progress, and later rounds of an ``input_required`` call, take the session's path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from itertools import count
from typing import Any, TypeGuard

import anyio
import mcp_types as types
import orjson
from anyio.streams.memory import MemoryObjectSendStream
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

logger = logging.getLogger(__name__)

# The session's own request ids are integers; a string with this prefix is never one of them.
ID_PREFIX = "workdock-lane-"
# How long the courtesy cancel may take to write (the dispatcher's bound too).
CANCEL_WRITE_TIMEOUT = 5.0
# Bytes waiting in the stdin pipe's buffer past which a call waits for the server to read them.
HIGH_WATER = 256 * 1024
_WRITE_FAILED = (RuntimeError, ConnectionResetError, BrokenPipeError)  # uvloop's, and asyncio's

_CLOSED = types.ErrorData(code=types.CONNECTION_CLOSED, message="Connection closed")
_TIMED_OUT = types.ErrorData(code=types.REQUEST_TIMEOUT, message="timed out")  # only ever seen here

_Outcome = dict[str, Any] | types.ErrorData
_Waiter = asyncio.Future[_Outcome]


class FastLane:
    """The lane of one stdio session; the transport attaches its writer and feeds it answers.

    A call waits on a bare asyncio future with a timer for its timeout: anyio's events and
    cancel scopes cost a tenth of a call's CPU here. Cancellation still reaches it as anyio's
    (on asyncio a cancel scope cancels the task), so callers may use either.
    """

    def __init__(self) -> None:
        self._ids = count(1)
        self._pending: dict[str, _Waiter] = {}
        self._stream: MemoryObjectSendStream[bytes] | None = None
        self._stdin: asyncio.StreamWriter | None = None
        self._on_broken: Callable[[], None] = self.close
        self._out: list[bytes] = []  # lines for the next write
        self._closed = False

    # ---- the transport's side -------------------------------------------------------------------

    def attach(
        self,
        stream: MemoryObjectSendStream[bytes],
        stdin: asyncio.StreamWriter | None = None,
        on_broken: Callable[[], None] | None = None,
    ) -> None:
        """``stream`` is the server's stdin pump: each item is one line, with its newline.
        ``stdin``, when given, is the pipe itself, written directly; ``on_broken`` is called when a
        write to it fails (the server is gone)."""
        self._stream = stream
        self._stdin = stdin
        if on_broken is not None:
            self._on_broken = on_broken

    @staticmethod
    def owns(request_id: object) -> TypeGuard[str]:
        return isinstance(request_id, str) and request_id.startswith(ID_PREFIX)

    def answer(self, message: object) -> bool:
        """Take ``message`` (a parsed stdout line) if it answers a lane call; False otherwise."""
        if not isinstance(message, dict) or "method" in message:
            return False
        request_id = message.get("id")
        if not self.owns(request_id):
            return False
        if "error" in message:
            self.resolve(request_id, _error_of(message["error"]))
        elif isinstance(result := message.get("result"), dict):
            self.resolve(request_id, result)
        else:
            error = types.ErrorData(
                code=types.INTERNAL_ERROR, message="the server sent an answer without a result"
            )
            self.resolve(request_id, error)
        return True

    def resolve(self, request_id: str, outcome: _Outcome) -> None:
        waiter = self._pending.pop(request_id, None)
        if waiter is None:
            logger.debug("dropping the answer to unknown or abandoned request %r", request_id)
        elif not waiter.done():
            waiter.set_result(outcome)

    def close(self) -> None:
        """The connection ended: every call in flight fails now, and later ones at once (idempotent)."""
        self._closed = True
        pending, self._pending = self._pending, {}
        for waiter in pending.values():
            if not waiter.done():
                waiter.set_result(_CLOSED)

    # ---- the caller's side ----------------------------------------------------------------------

    async def request(self, method: str, params: Mapping[str, Any], timeout: float | None) -> dict[str, Any]:
        """Send one request and wait for its result; :class:`MCPError` as the SDK's dispatcher raises."""
        stream = self._stream
        if self._closed or stream is None:
            raise MCPError(code=types.CONNECTION_CLOSED, message="Connection closed")
        request_id = f"{ID_PREFIX}{next(self._ids)}"
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        loop = asyncio.get_running_loop()
        waiter: _Waiter = loop.create_future()
        self._pending[request_id] = waiter
        timer = loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            await self._send(stream, orjson.dumps(message) + b"\n")
            outcome = await waiter
        except asyncio.CancelledError:
            # The caller gave up (a hang-up, a cancelled turn); a put cut short may have gone out.
            with anyio.move_on_after(CANCEL_WRITE_TIMEOUT, shield=True):
                await self._cancel(stream, request_id, "caller cancelled")
            raise
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, *_WRITE_FAILED):
            raise MCPError(code=types.CONNECTION_CLOSED, message="Connection closed") from None
        finally:
            if timer is not None:
                timer.cancel()
            self._pending.pop(request_id, None)  # a late answer is dropped, not kept
        if outcome is _TIMED_OUT:
            with anyio.move_on_after(CANCEL_WRITE_TIMEOUT):
                await self._cancel(stream, request_id, f"timed out after {timeout}s")
            raise MCPError(code=types.REQUEST_TIMEOUT, message=f"Request {method!r} timed out")
        if isinstance(outcome, types.ErrorData):
            raise MCPError(code=outcome.code, message=outcome.message, data=outcome.data)
        return outcome

    async def _send(self, stream: MemoryObjectSendStream[bytes], line: bytes) -> None:
        stdin = self._stdin
        if stdin is None:
            await _put(stream, line)
            return
        # The server is not reading (its buffer is full): wait for it, as the pump's write would.
        if stdin.transport.get_write_buffer_size() > HIGH_WATER:
            await stdin.drain()
        self._out.append(line)
        if len(self._out) == 1:  # the first line of this turn of the loop: one write for them all
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        lines, self._out = self._out, []
        if self._closed or self._stdin is None or not lines:
            return
        try:
            self._stdin.write(b"".join(lines))
        except _WRITE_FAILED as exc:  # the server closed its stdin, or is gone
            logger.debug("could not write %d line(s) to the server: %r", len(lines), exc)
            self._on_broken()

    async def _cancel(self, stream: MemoryObjectSendStream[bytes], request_id: str, reason: str) -> None:
        params = {"requestId": request_id, "reason": reason}
        line = orjson.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params})
        try:
            await self._send(stream, line + b"\n")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, *_WRITE_FAILED):
            logger.debug("dropped notifications/cancelled for %r: the server is gone", request_id)


def _expire(waiter: _Waiter) -> None:
    if not waiter.done():
        waiter.set_result(_TIMED_OUT)


async def _put(stream: MemoryObjectSendStream[bytes], line: bytes) -> None:
    try:
        stream.send_nowait(line)  # the pump's buffer has room: no task switch
    except anyio.WouldBlock:
        await stream.send(line)


def _error_of(raw: object) -> types.ErrorData:
    try:
        return types.ErrorData.model_validate(raw)
    except ValidationError:
        return types.ErrorData(
            code=types.INTERNAL_ERROR, message="the server sent an error that is not valid"
        )
