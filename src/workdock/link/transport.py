"""The server's side of a stream: ``exchange`` sends one of ``AgentClient``'s requests over a link
(registry.py's transport picks the link, or the relay to another replica's), so nothing above it
knows which way a request went.

Timeouts are the request's own (httpx2 leaves them to the transport): ``read`` bounds the wait
for the response head and for each piece of the body, ``write`` the wait for window to send the
request body. A caller that gives up (cancelled, timed out, or closing the response early)
cancels the stream, which the agent's app sees as a client hang-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx2

from workdock.link.frames import Kind
from workdock.link.session import Session, Stream, StreamError

# Hop-by-hop headers mean nothing on a stream of the link.
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"host"})


class _ResponseBody(httpx2.AsyncByteStream):
    def __init__(self, stream: Stream, request: httpx2.Request, read_timeout: float | None) -> None:
        self._stream = stream
        self._request = request
        self._read_timeout = read_timeout
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        more = True
        while more:
            try:
                chunk, more = await asyncio.wait_for(self._stream.read(), self._read_timeout)
            except TimeoutError:
                self._stream.cancel()
                raise httpx2.ReadTimeout(
                    "the agent sent nothing more in time", request=self._request
                ) from None
            except StreamError as exc:
                raise httpx2.ReadError(str(exc), request=self._request) from None
            if chunk:
                yield chunk
        self._done = True
        self._stream.session.forget(self._stream)

    async def aclose(self) -> None:
        if not self._done:  # closed before the end: the caller does not want the rest
            self._done = True
            self._stream.cancel()


async def exchange(session: Session, request: httpx2.Request) -> httpx2.Response:
    """Send ``request`` on a new stream of ``session``; the response's body streams as it comes, and
    so does the request's when it is a stream (a relayed request, link/relay.py)."""
    timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
    read_timeout, write_timeout = timeouts.get("read"), timeouts.get("write")
    try:
        stream = session.open_stream()
    except StreamError as exc:
        raise httpx2.ConnectError(str(exc), request=request) from None
    head: dict[str, Any] = {
        "method": request.method,
        "target": request.url.raw_path.decode("ascii"),
        "headers": [
            [name.decode("latin-1"), value.decode("latin-1")]
            for name, value in request.headers.raw
            if name.lower() not in _HOP_BY_HOP
        ],
    }
    sending = asyncio.ensure_future(_send_request(stream, head, write_timeout, request))
    try:
        # The answer may come before the whole body has gone (an early refusal): wait for either.
        waits: set[asyncio.Future[Any]] = {sending, stream.head}
        done, _ = await asyncio.wait(waits, timeout=read_timeout, return_when="FIRST_COMPLETED")
        if sending in done and not stream.head.done():
            sending.result()  # raises a write timeout or a lost link
            response_head = await asyncio.wait_for(stream.head, read_timeout)
        elif not done:
            raise TimeoutError
        else:
            response_head = stream.head.result()
    except TimeoutError:
        stream.cancel()
        raise httpx2.ReadTimeout("the agent did not answer in time", request=request) from None
    except StreamError as exc:
        stream.cancel()
        raise httpx2.ReadError(str(exc), request=request) from None
    except BaseException:  # the caller gave up: the agent hears of it as a hang-up
        stream.cancel()
        raise
    finally:
        if not sending.done():
            sending.add_done_callback(_ignore_result)
        else:
            _ignore_result(sending)
    return _response(response_head, stream, request, read_timeout)


async def _send_request(
    stream: Stream, head: dict[str, Any], timeout: float | None, request: httpx2.Request
) -> None:
    kind: Kind = Kind.OPEN
    try:
        async for chunk, last in _body(request):
            await asyncio.wait_for(
                stream.send(chunk, end=last, kind=kind, head=head if kind is Kind.OPEN else None), timeout
            )
            kind = Kind.DATA
    except TimeoutError:
        raise httpx2.WriteTimeout(
            "the agent did not take the request body in time", request=request
        ) from None
    except StreamError:
        pass  # the stream ended (answered early, cancelled or lost): the response side says which


async def _body(request: httpx2.Request) -> AsyncIterator[tuple[bytes, bool]]:
    """The request body in pieces, each with whether it is the last (whose frame carries END)."""
    if isinstance(request.stream, httpx2.ByteStream):
        yield await request.aread(), True
        return
    previous: bytes | None = None
    async for chunk in request.stream:  # type: ignore[union-attr]
        if not chunk:
            continue
        if previous is not None:
            yield previous, False
        previous = chunk
    yield previous or b"", True


def _ignore_result(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


def _response(
    head: dict[str, Any], stream: Stream, request: httpx2.Request, read_timeout: float | None
) -> httpx2.Response:
    status = head.get("status")
    headers = head.get("headers")
    if not isinstance(status, int) or not isinstance(headers, list):
        stream.cancel()
        raise httpx2.RemoteProtocolError("the agent sent a malformed response head", request=request)
    return httpx2.Response(
        status,
        headers=[(str(name), str(value)) for name, value in headers],
        stream=_ResponseBody(stream, request, read_timeout),
        request=request,
        extensions={"http_version": b"HTTP/1.1"},
    )
