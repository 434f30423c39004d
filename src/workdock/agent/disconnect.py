"""Stop work nobody waits for: a request's work is cancelled when its client hangs up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Receive

from workdock.http_errors import ApiError

T = TypeVar("T")


async def until_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """``work``'s result, or its cancellation when the client hangs up first (answered 499);
    ``receive`` is the request's ASGI channel, its body already read.

    A chat that interrupts a turn drops the connection of a running tool call or command; without
    this the work would run on to its timeout with nobody to answer (and an MCP server would never
    hear that the call was cancelled). One bare asyncio task watches the connection: this sits on
    the hot call path, where a task group per request cost a fifth of the agent's throughput.
    """
    current = asyncio.current_task()
    assert current is not None
    hung_up = False

    async def watch() -> None:
        nonlocal hung_up
        # The body has been read: the next message is the disconnect (or never comes).
        while (await receive())["type"] != "http.disconnect":
            pass
        hung_up = True
        current.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if hung_up and current.uncancel() == 0:
            raise ApiError(499, "client closed the request") from None
        raise
    finally:
        watcher.cancel()
