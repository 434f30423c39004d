"""Answers as Server-Sent Events, for a caller that sent ``Accept: text/event-stream``.

The work runs while the response streams: what it reports (progress, output, requests for
input) goes out as named events as it happens, then one ``result`` event with exactly the JSON
body the plain route gives, or one ``error`` event with the status and the error shape. The
caller hanging up cancels the work, as it does on the plain routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request

from workdock.http_errors import ApiError
from workdock.memory import give_back

logger = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"
PING_S = 10  # a comment line this often: a caller waiting on a person must not time out the read
CLEANUP_S = 5.0  # for the work to end once the caller hung up
MAX_QUEUED = 1000  # reports not yet sent; past this, progress reports are dropped (the newest win)

Emit = Callable[[str, dict[str, Any]], None]
"""Send one event: (name, data)."""


def wants_events(request: Request) -> bool:
    return EVENT_STREAM in request.headers.get("accept", "")


def sse_openapi(events: str) -> dict[str, Any]:
    """The OpenAPI entry of a route's streaming answer."""
    return {"content": {EVENT_STREAM: {"schema": {"type": "string"}, "example": events}}}


def event_stream(work: Callable[[Emit], Awaitable[dict[str, Any]]]) -> EventSourceResponse:
    """Run ``work(emit)`` and stream what it emits, then its result (or its ``ApiError``)."""
    queue: deque[tuple[str, dict[str, Any]]] = deque()
    wake = asyncio.Event()

    def emit(name: str, data: dict[str, Any]) -> None:
        if len(queue) >= MAX_QUEUED and name == "progress":
            return  # a caller that reads slowly misses progress, never output or a question
        queue.append((name, data))
        wake.set()

    async def generate() -> AsyncIterator[ServerSentEvent]:
        task = asyncio.ensure_future(work(emit))
        try:
            while True:
                while queue:
                    name, data = queue.popleft()
                    yield _event(name, data)
                if task.done():
                    break
                wake.clear()
                waiter = asyncio.ensure_future(wake.wait())
                await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
            try:
                result = _event("result", task.result())
                yield result
                give_back(len(result.data or ""))
            except ApiError as exc:
                yield _event("error", {"status": exc.status, "message": exc.message, "detail": exc.detail})
            except Exception:
                logger.exception("a streamed request failed")
                yield _event(
                    "error", {"status": 500, "message": "internal error in the agent", "detail": None}
                )
        finally:
            if not task.done():  # the caller hung up: the work stops with it
                # Cancelled once, then waited for (shielded, bounded): a second cancel would cut
                # short the cleanup that tells the MCP server the call is cancelled.
                task.cancel()
                with anyio.move_on_after(CLEANUP_S, shield=True):
                    await asyncio.wait({task})

    return EventSourceResponse(
        generate(), ping=PING_S, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


def _event(name: str, data: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(data=orjson.dumps(data).decode(), event=name)
