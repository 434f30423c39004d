"""The fast lane: a stdio server's plain ``tools/call`` sent and answered below the SDK session.

Through ``ClientSession`` every call builds a pydantic request model and serialises it, passes
two memory streams and the dispatcher's read loop, opens a memory stream of its own for its
answer, and every answer is validated as a ``JSONRPCMessage``: together most of the agent's CPU
per call (py-spy under the call-tool benchmark). On the lane the request line is written by
orjson into the transport's stdin pump (batched with the session's own messages), and the
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

import logging
from collections.abc import Awaitable, Callable, Mapping
from itertools import count
from typing import Any, TypeGuard

import anyio
import mcp_types as types
import orjson
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

logger = logging.getLogger(__name__)

# The session's own request ids are integers; a string with this prefix is never one of them.
ID_PREFIX = "workdock-lane-"
# How long the courtesy cancel may take to write (the dispatcher's bound too).
CANCEL_WRITE_TIMEOUT = 5.0

Write = Callable[[bytes], Awaitable[None]]


class _Waiter:
    """One call's slot: set once, by its answer or by the end of the connection."""

    __slots__ = ("done", "outcome")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.outcome: dict[str, Any] | types.ErrorData | None = None


_CLOSED = types.ErrorData(code=types.CONNECTION_CLOSED, message="Connection closed")


class FastLane:
    """The lane of one stdio session; the transport attaches its writer and feeds it answers."""

    def __init__(self) -> None:
        self._ids = count(1)
        self._pending: dict[str, _Waiter] = {}
        self._write: Write | None = None
        self._closed = False

    # ---- the transport's side -------------------------------------------------------------------

    def attach(self, write: Write) -> None:
        """``write`` puts one line (with its newline) into the server's stdin pump."""
        self._write = write

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

    def resolve(self, request_id: str, outcome: dict[str, Any] | types.ErrorData) -> None:
        waiter = self._pending.pop(request_id, None)
        if waiter is None:
            logger.debug("dropping the answer to unknown or abandoned request %r", request_id)
            return
        waiter.outcome = outcome
        waiter.done.set()

    def close(self) -> None:
        """The connection ended: every call in flight fails now, and later ones at once (idempotent)."""
        self._closed = True
        pending, self._pending = self._pending, {}
        for waiter in pending.values():
            waiter.outcome = _CLOSED
            waiter.done.set()

    # ---- the caller's side ----------------------------------------------------------------------

    async def request(self, method: str, params: Mapping[str, Any], timeout: float | None) -> dict[str, Any]:
        """Send one request and wait for its result; :class:`MCPError` as the SDK's dispatcher raises."""
        write = self._write
        if self._closed or write is None:
            raise MCPError(code=types.CONNECTION_CLOSED, message="Connection closed")
        request_id = f"{ID_PREFIX}{next(self._ids)}"
        line = orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}) + b"\n"
        waiter = _Waiter()
        self._pending[request_id] = waiter
        written = False
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()
            written = True  # a write cut short may still have gone out: it counts as sent
            try:
                await write(line)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                raise MCPError(code=types.CONNECTION_CLOSED, message="Connection closed") from None
            with anyio.move_on_after(timeout if timeout is not None else float("inf")) as scope:
                await waiter.done.wait()
            if scope.cancelled_caught and waiter.outcome is None:
                with anyio.move_on_after(CANCEL_WRITE_TIMEOUT):
                    await self._cancel(write, request_id, f"timed out after {timeout}s")
                raise MCPError(code=types.REQUEST_TIMEOUT, message=f"Request {method!r} timed out")
        except anyio.get_cancelled_exc_class():
            if written and waiter.outcome is None:
                with anyio.move_on_after(CANCEL_WRITE_TIMEOUT, shield=True):
                    await self._cancel(write, request_id, "caller cancelled")
            raise
        finally:
            self._pending.pop(request_id, None)  # a late answer is dropped, not kept
        outcome = waiter.outcome
        if isinstance(outcome, types.ErrorData):
            raise MCPError(code=outcome.code, message=outcome.message, data=outcome.data)
        assert outcome is not None
        return outcome

    @staticmethod
    async def _cancel(write: Write, request_id: str, reason: str) -> None:
        params = {"requestId": request_id, "reason": reason}
        line = orjson.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params})
        try:
            await write(line + b"\n")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            logger.debug("dropped notifications/cancelled for %r: the server is gone", request_id)


def _error_of(raw: object) -> types.ErrorData:
    try:
        return types.ErrorData.model_validate(raw)
    except ValidationError:
        return types.ErrorData(
            code=types.INTERNAL_ERROR, message="the server sent an error that is not valid"
        )
