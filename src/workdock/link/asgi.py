"""The agent's side of a stream: each request the server opens is served by the agent's own ASGI
app, exactly as uvicorn would serve it over HTTP (same routes, statuses, bodies and limits).

A caller that gives up is an ``http.disconnect``, as a client hang-up is over HTTP, so the app's
own cancellation (``agent/disconnect.py``) ends the MCP call or the command.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.types import ASGIApp, Message, Scope

from workdock.agent.auth import LINKED
from workdock.link.frames import Kind
from workdock.link.session import Stream, StreamError

logger = logging.getLogger(__name__)

_DISCONNECT: Message = {"type": "http.disconnect"}


def _scope(head: dict[str, Any]) -> Scope:
    method, target, headers = head.get("method"), head.get("target"), head.get("headers")
    if not isinstance(method, str) or not isinstance(target, str) or not target.startswith("/"):
        raise ValueError("an OPEN head needs a method and a target starting with /")
    if not isinstance(headers, list) or not all(
        isinstance(h, list) and len(h) == 2 and all(isinstance(p, str) for p in h) for h in headers
    ):
        raise ValueError("OPEN headers must be a list of [name, value] strings")
    path, _, query = target.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method.upper(),
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "root_path": "",
        "headers": [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers],
        "client": None,
        "server": None,
        "state": {},
        LINKED: True,  # the link itself was authenticated by the server's token check
    }


class AsgiBridge:
    """Runs one task per stream the server opens; ``aclose`` ends those still running."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._tasks: set[asyncio.Task[None]] = set()

    def open(self, stream: Stream, head: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(stream, head))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, stream: Stream, head: dict[str, Any]) -> None:
        try:
            scope = _scope(head)
        except ValueError as exc:
            stream.reset(f"bad request head: {exc}")
            return
        start: Message | None = None
        responded = False
        body_done = False

        async def receive() -> Message:
            nonlocal body_done
            if not body_done:
                try:
                    chunk, more = await stream.read()
                except StreamError:
                    return _DISCONNECT
                body_done = not more
                return {"type": "http.request", "body": chunk, "more_body": more}
            await stream.wait_gone()
            return _DISCONNECT

        async def send(message: Message) -> None:
            nonlocal start, responded
            if stream.error is not None:
                return  # the caller is gone: dropped, as a server drops what a hung-up client misses
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body":
                return
            body: bytes = message.get("body", b"")
            more: bool = message.get("more_body", False)
            try:
                if responded:
                    await stream.send(body, end=not more)
                    return
                assert start is not None, "http.response.body before http.response.start"
                responded = True
                head = {
                    "status": start["status"],
                    "headers": [
                        [k.decode("latin-1"), v.decode("latin-1")] for k, v in start.get("headers", [])
                    ],
                }
                await stream.send(body, end=not more, kind=Kind.RESPONSE, head=head)
            except StreamError:
                pass

        try:
            await self._app(scope, receive, send)
        except Exception:
            logger.exception("the agent failed answering %s %s over the link", scope["method"], scope["path"])
            if responded:
                stream.reset("the agent failed while answering")
        finally:
            if not responded and stream.error is None:
                await _answer_500(stream)  # the app ended without an answer (or raised before one)
            stream.session.forget(stream)


async def _answer_500(stream: Stream) -> None:
    body = orjson.dumps({"message": "internal error in the agent", "detail": None})
    head = {
        "status": 500,
        "headers": [["content-type", "application/json"], ["content-length", str(len(body))]],
    }
    try:
        await stream.send(body, end=True, kind=Kind.RESPONSE, head=head)
    except StreamError:
        pass
