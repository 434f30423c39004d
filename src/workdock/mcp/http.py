"""The HTTP client under the streamable HTTP and SSE transports: bounded answers, errors that say why.

The SDK's transports read whatever a server answers, and reduce an HTTP error
to "Server returned an error response". Under them sits this client's
transport, which

- caps what one message may take (``limits``): a JSON body over the limit, or an
  SSE line over it, is replaced by a JSON-RPC error for the request it answered,
  without ever being held whole (decoded bytes are counted, so a compressed
  body cannot slip past);
- turns an HTTP error without a JSON-RPC body (401, 403, 5xx; a 404 to the
  handshake) into a JSON-RPC error naming the status and the URL, which the
  SDK passes on to the caller.

Redirects are left to the SDK, which follows them only within the server's
origin: configured headers never reach another one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import mcp_types as types
import orjson
from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT, McpHttpClientFactory

from workdock.mcp.limits import LineSplitter, Oversize, error_line, oversize_error

_ERROR_BODY_PEEK = 64 * 1024  # of an error answer: enough for a JSON-RPC error or a message to quote
_QUOTED = 200
# The SDK's transports answer these themselves (a 404 to server/discover means "a 2025-era server").
_LEFT_TO_THE_SDK = {404}


def shown_url(url: httpx2.URL) -> str:
    """A URL for messages and logs: without userinfo or query, which may carry secrets."""
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))


def explain_status(status: int, reason: str, method: str, url: httpx2.URL) -> str:
    """What an HTTP error answer means for the user, in one line."""
    text = f"{method} {shown_url(url)} answered {status} {reason}".rstrip()
    if status in (401, 403):
        return (
            f"{text}: the server wants credentials. Set them in the server's headers "
            '(e.g. "Authorization": "Bearer ${TOKEN}")'
        )
    if status == 404:
        return f"{text}: is the URL right?"
    if 500 <= status < 600:
        return f"{text}: the server failed; see its own log"
    return text


def client_factory(max_result_bytes: int, *, sse_line_limit: int | None = None) -> McpHttpClientFactory:
    """Makes the ``httpx2.AsyncClient`` of one MCP server (the SDK's factory signature), guarded as above."""

    def guard(transport: httpx2.AsyncBaseTransport) -> httpx2.AsyncBaseTransport:
        return GuardedTransport(
            transport, max_result_bytes=max_result_bytes, sse_line_limit=sse_line_limit or max_result_bytes
        )

    def create(
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        return _GuardedClient(
            guard,
            headers=headers,
            timeout=timeout or httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT),
            auth=auth,
        )

    return create


class _GuardedClient(httpx2.AsyncClient):
    """httpx2's client with each transport it makes guarded: the direct one and those of the proxies
    the environment names (``HTTPS_PROXY`` and the like, which a client given one transport ignores)."""

    def __init__(
        self, guard: Callable[[httpx2.AsyncBaseTransport], httpx2.AsyncBaseTransport], **kwargs: Any
    ) -> None:
        self._guard = guard
        super().__init__(**kwargs)

    def _init_transport(self, *args: Any, **kwargs: Any) -> httpx2.AsyncBaseTransport:
        return self._guard(super()._init_transport(*args, **kwargs))

    def _init_proxy_transport(self, *args: Any, **kwargs: Any) -> httpx2.AsyncBaseTransport:
        return self._guard(super()._init_proxy_transport(*args, **kwargs))


class GuardedTransport(httpx2.AsyncBaseTransport):
    def __init__(
        self, inner: httpx2.AsyncBaseTransport, *, max_result_bytes: int, sse_line_limit: int
    ) -> None:
        self._inner = inner
        self.limit = max_result_bytes
        self.sse_line_limit = sse_line_limit

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        request_id, method = _request_of(request)
        if response.status_code >= 400 and (
            response.status_code not in _LEFT_TO_THE_SDK or method == "initialize"
        ):
            return await _explained(request, response, request_id)
        if response.status_code >= 300:
            return response  # redirects: the SDK decides (within the origin only)
        if content_type == "text/event-stream":
            stream: httpx2.AsyncByteStream = _SSELines(response, self.sse_line_limit, request_id)
        else:
            stream = _CappedBody(response, self.limit, request_id)
        return _replaced(request, response, stream)


def _request_of(request: httpx2.Request) -> tuple[types.RequestId | None, str | None]:
    """The JSON-RPC id and method of the message a POST carries (None for anything else)."""
    if request.method != "POST":
        return None, None
    try:
        body = orjson.loads(request.content)
    except (orjson.JSONDecodeError, httpx2.RequestNotRead):
        return None, None
    if not isinstance(body, dict):
        return None, None
    request_id = body.get("id")
    method = body.get("method")
    return (
        request_id if isinstance(request_id, int | str) and not isinstance(request_id, bool) else None,
        method if isinstance(method, str) else None,
    )


def _replaced(
    request: httpx2.Request, response: httpx2.Response, stream: httpx2.AsyncByteStream
) -> httpx2.Response:
    # The stream yields decoded bytes: the encoding (and the length it implied) no longer apply.
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length")
    ]
    return httpx2.Response(
        response.status_code, headers=headers, stream=stream, request=request, extensions=response.extensions
    )


async def _explained(
    request: httpx2.Request, response: httpx2.Response, request_id: types.RequestId | None
) -> httpx2.Response:
    """An error answer as a JSON-RPC error naming its status (unless it already is a JSON-RPC error)."""
    try:
        body = await _read_at_most(response, _ERROR_BODY_PEEK)
    except httpx2.HTTPError:
        body = b""
    finally:
        await response.aclose()
    try:
        parsed = types.jsonrpc_message_adapter.validate_json(body, by_name=False)
    except ValueError:
        parsed = None
    if isinstance(parsed, types.JSONRPCError):
        content = body  # the server said what went wrong; the SDK passes it on
    else:
        message = explain_status(response.status_code, response.reason_phrase, request.method, request.url)
        if quoted := _quote(body):
            message += f" ({quoted})"
        error = types.ErrorData(
            code=types.INTERNAL_ERROR, message=message, data={"http_status": response.status_code}
        )
        content = error_line(request_id, error)
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length", "content-type", "transfer-encoding")
    ]
    headers.append(("content-type", "application/json"))
    return httpx2.Response(
        response.status_code,
        headers=headers,
        content=content,
        request=request,
        extensions=response.extensions,
    )


async def _read_at_most(response: httpx2.Response, size: int) -> bytes:
    parts: list[bytes] = []
    held = 0
    async for chunk in response.aiter_bytes():
        parts.append(chunk[: size - held])
        held += len(parts[-1])
        if held >= size:
            break
    return b"".join(parts)


def _quote(body: bytes) -> str:
    """The start of a short plain-text error body, on one line; nothing for HTML pages or binary."""
    text = body[: _QUOTED * 4].decode("utf-8", "replace")
    if not text.strip() or text.lstrip().startswith("<") or "\ufffd" in text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= _QUOTED else line[:_QUOTED] + "…"


class _CappedBody(httpx2.AsyncByteStream):
    """A body held to the limit; one over it becomes an error answer for the request it answered."""

    def __init__(self, response: httpx2.Response, limit: int, request_id: types.RequestId | None) -> None:
        self._response = response
        self._limit = limit
        self._request_id = request_id

    async def __aiter__(self) -> AsyncIterator[bytes]:
        declared = self._response.headers.get("content-length")
        size = (
            int(declared)
            if declared and declared.isdigit() and "content-encoding" not in self._response.headers
            else None
        )
        if size is not None and size > self._limit:
            yield error_line(self._request_id, oversize_error(size, self._limit))
            return
        # Held back until the end is seen: a body that turns out too large is replaced, not cut.
        parts: list[bytes] = []
        held = 0
        async for chunk in self._response.aiter_bytes():
            held += len(chunk)
            if held > self._limit:
                # Not read further: the rest may be any size. (The connection is closed with it.)
                parts.clear()
                yield error_line(self._request_id, oversize_error(size, self._limit))
                return
            parts.append(chunk)
        while parts:
            yield parts.pop(0)

    async def aclose(self) -> None:
        await self._response.aclose()


class _SSELines(httpx2.AsyncByteStream):
    """An event stream passed on line by line; a data line over the limit becomes an error answer."""

    def __init__(self, response: httpx2.Response, limit: int, request_id: types.RequestId | None) -> None:
        self._response = response
        self._splitter = LineSplitter(limit)
        self._request_id = request_id  # the request this stream answers (None: the GET stream)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_bytes():
            kept = [line for line in map(self._line, self._splitter.feed(chunk)) if line is not None]
            if kept:
                yield b"".join(line + b"\n" for line in kept)
        for line in map(self._line, self._splitter.end()):
            if line is not None:
                yield line

    def _line(self, line: bytes | Oversize) -> bytes | None:
        if isinstance(line, bytes):
            return line
        if not line.head.startswith(b"data:") or line.kind == "method":
            return None  # an oversize field, or a notification no call waits for: dropped
        # On a POST's stream the answer is to that POST's request, whatever the line says.
        request_id = self._request_id if self._request_id is not None else line.request_id
        return b"data: " + error_line(request_id, oversize_error(line.size, self._splitter.limit))

    async def aclose(self) -> None:
        await self._response.aclose()


def sse_line_limit(max_result_bytes: int) -> int:
    """The legacy SSE transport parses events itself with a fixed 1 MiB cap; stay under it."""
    return min(max_result_bytes, 1024 * 1024 - 4096)
