"""A bound on request bodies, as one ASGI middleware for both HTTP servers.

A declared ``Content-Length`` over the limit is refused before anything is read; a body sent
without one (chunked) is counted as it is read and refused the moment it passes the limit, so
memory stays bounded whatever a client sends. Refusals are a 413 in the one error shape.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workdock.http_errors import HTTPApiError


def too_large(limit: int) -> HTTPApiError:
    return HTTPApiError(413, "request body too large", f"the limit is {limit} bytes")


class BodyLimit:
    """``exempt``: path prefixes whose routes bound what they read themselves."""

    def __init__(self, app: ASGIApp, max_bytes: int, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt and str(scope.get("path", "")).startswith(self.exempt)):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > limit:
                    await _refuse(send, limit)
                    return
                break
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Raised inside the route that reads the body: the error handler answers 413.
                    raise too_large(limit)
            return message

        await self.app(scope, counted, send)


async def _refuse(send: Send, limit: int) -> None:
    error = too_large(limit)
    body = orjson.dumps({"message": error.detail, "detail": error.explanation})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def size_from_env(
    name: str, default: int, environ: Mapping[str, str] | None = None, *, unit: str = "bytes"
) -> int:
    """A positive count of ``unit`` (bytes by default) from the environment variable ``name``
    (``default`` when unset)."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) <= 0:
        raise ValueError(f"{name} must be a positive number of {unit}, got {value!r}")
    return int(value)
