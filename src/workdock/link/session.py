"""One link, the same machinery on both ends: streams, flow control, pings and the silence limit.

The server opens a stream per request; the agent answers on it. Each direction of a stream has
a window: a side sends at most INITIAL_WINDOW bytes that the other has not yet consumed, so a
10 MB body is never more than a window ahead of its reader and a small call's frames are never
queued behind more than that. One writer task sends every frame in the order it was queued;
one reader task dispatches what arrives and never waits on a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from workdock.link.frames import (
    INITIAL_WINDOW,
    MAX_BODY,
    MAX_STREAMS,
    Frame,
    Kind,
    ProtocolError,
    decode,
    encode,
    window,
    window_increment,
)

logger = logging.getLogger(__name__)

PING_INTERVAL = 15.0  # each side pings at least this often
SILENCE_LIMIT = 45.0  # a link with nothing received for this long is closed
PING_ENV = "WORKDOCK_LINK_PING_INTERVAL"
SILENCE_ENV = "WORKDOCK_LINK_SILENCE_LIMIT"

# WebSocket close codes the two sides use to tell each other why a link ends.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL = 1002
CLOSE_REVOKED = 4401  # the token was rotated or the workspace deleted: the agent must not redial
CLOSE_SILENT = 4408  # nothing arrived within the silence limit
CLOSE_REPLACED = 4409  # another agent linked for the same workspace

_CLOSE = object()  # the writer's signal to stop


def timings_from_env(environ: Mapping[str, str] | None = None) -> tuple[float, float]:
    """(ping interval, silence limit) in seconds, from the environment when set there."""
    environ = os.environ if environ is None else environ
    try:
        ping = float(environ.get(PING_ENV) or PING_INTERVAL)
        silence = float(environ.get(SILENCE_ENV) or SILENCE_LIMIT)
    except ValueError:
        raise ValueError(f"{PING_ENV} and {SILENCE_ENV} are numbers of seconds") from None
    if not 0 < ping < silence:
        raise ValueError(f"{PING_ENV} must be above 0 and below {SILENCE_ENV}")
    return ping, silence


class LinkClosed(Exception):
    """The link ended; ``code`` and ``reason`` as in a WebSocket close."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{reason} ({code})" if reason else f"closed ({code})")
        self.code = code
        self.reason = reason


class StreamError(Exception):
    """A stream ended abnormally: cancelled, reset by the peer, or its link went away."""


class Socket(Protocol):
    """A WebSocket carrying binary messages; ``recv`` raises LinkClosed when the peer closes."""

    async def send(self, data: bytes) -> None: ...

    async def recv(self) -> bytes: ...

    async def close(self, code: int, reason: str) -> None: ...


class Stream:
    """One request and its response. Body bytes arrive in order; ``read`` hands them out and
    grants the peer more window as they are consumed."""

    def __init__(self, session: Session, stream_id: int) -> None:
        self.session = session
        self.id = stream_id
        self.error: str | None = None
        self.head: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._credit = INITIAL_WINDOW
        self._credit_ready = asyncio.Event()
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._ended = False  # the peer sent its last frame
        self._readable = asyncio.Event()
        self._ungranted = 0
        self._sent_end = False  # we sent our last frame
        self._gone = asyncio.Event()  # set with ``error``

    # ---- what the peer sends ---------------------------------------------------------------------

    def _feed(self, body: bytes, end: bool) -> None:
        if self._ended:
            raise ProtocolError(f"stream {self.id}: a frame after its last one")
        if body:
            self._buffered += len(body)
            if self._buffered > INITIAL_WINDOW:
                raise ProtocolError(f"stream {self.id}: more body than the window allows")
            self._chunks.append(body)
        if end:
            self._ended = True
        self._readable.set()

    def _on_window(self, increment: int) -> None:
        self._credit += increment
        if self._credit > 2**31:
            raise ProtocolError(f"stream {self.id}: a window over 2 GiB")
        self._credit_ready.set()

    def _fail(self, reason: str) -> None:
        if self.error is None:
            self.error = reason
        if not self.head.done():
            self.head.set_exception(StreamError(reason))
            self.head.exception()  # nobody may be waiting for it: do not warn
        self._readable.set()
        self._credit_ready.set()
        self._gone.set()

    async def read(self) -> tuple[bytes, bool]:
        """The next piece of the body and whether more follows; raises StreamError."""
        while not self._chunks:
            if self._ended:
                return b"", False
            if self.error is not None:
                raise StreamError(self.error)
            self._readable.clear()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        more = bool(self._chunks) or not self._ended
        if more:
            self._ungranted += len(chunk)
            if self._ungranted >= INITIAL_WINDOW // 4:
                self.session.enqueue(window(self.id, self._ungranted))
                self._ungranted = 0
        return chunk, more

    @property
    def body_complete(self) -> bool:
        return self._ended and not self._chunks

    async def wait_gone(self) -> None:
        """Until the stream is cancelled, reset or its link is lost."""
        await self._gone.wait()

    # ---- what we send ----------------------------------------------------------------------------

    async def send(
        self, body: bytes, *, end: bool, kind: Kind = Kind.DATA, head: dict[str, Any] | None = None
    ) -> None:
        """Send ``body`` (after a head frame when ``kind`` is OPEN or RESPONSE) in frames that
        stay within the window, waiting for the peer to grant more as it reads."""
        view = memoryview(body)
        while True:
            if self.error is not None:
                raise StreamError(self.error)
            if self._sent_end or (kind is Kind.DATA and not view and not end):
                return
            size = min(len(view), MAX_BODY, self._credit)
            if size == 0 and view and kind is Kind.DATA:
                self._credit_ready.clear()
                await self._credit_ready.wait()
                continue
            last = end and size == len(view)
            self._credit -= size
            self.session.enqueue(encode(kind, self.id, end=last, head=head, body=bytes(view[:size])))
            view = view[size:]
            kind, head = Kind.DATA, None
            if last:
                self._sent_end = True
                return
            if not view:
                return

    def cancel(self) -> None:
        """We give up on the stream (the caller left): tell the peer, forget the stream."""
        if self.error is None and not (self._ended and self._sent_end):
            self.session.enqueue(encode(Kind.CANCEL, self.id))
        self._fail("cancelled")
        self.session.forget(self)

    def reset(self, reason: str) -> None:
        """The stream failed on our side after it started: tell the peer why."""
        if self.error is None:
            self.session.enqueue(encode(Kind.RESET, self.id, head={"message": reason}))
        self._fail(reason)
        self.session.forget(self)


class Session:
    """The frames of one WebSocket. ``on_open`` (the agent's) is handed each stream the peer opens."""

    def __init__(
        self,
        socket: Socket,
        *,
        on_open: Callable[[Stream, dict[str, Any]], None] | None = None,
        ping_interval: float = PING_INTERVAL,
        silence_limit: float = SILENCE_LIMIT,
    ) -> None:
        self._socket = socket
        self._on_open = on_open
        self._ping_interval = ping_interval
        self._silence_limit = silence_limit
        self._streams: dict[int, Stream] = {}
        self._next_id = 1
        self._outbox: asyncio.Queue[Any] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._last_seen = self._loop.time()
        self._close_request: LinkClosed | None = None
        self._finished = asyncio.Event()
        self.closed: LinkClosed | None = None

    @property
    def in_flight(self) -> int:
        return len(self._streams)

    def enqueue(self, frame: bytes) -> None:
        if self.closed is None and self._close_request is None:
            self._outbox.put_nowait(frame)

    def open_stream(self) -> Stream:
        if self.closed is not None:
            raise StreamError(f"the link is closed: {self.closed}")
        if len(self._streams) >= MAX_STREAMS:
            raise StreamError(f"{MAX_STREAMS} requests are in flight on the link already")
        stream = Stream(self, self._next_id)
        self._next_id += 1
        self._streams[stream.id] = stream
        return stream

    def forget(self, stream: Stream) -> None:
        if self._streams.get(stream.id) is stream:
            del self._streams[stream.id]

    async def close(self, code: int, reason: str, *, wait: float = 5.0) -> None:
        """End the link (frames already queued go first) and wait until it is down."""
        if self.closed is None and self._close_request is None:
            self._close_request = LinkClosed(code, reason)
            self._outbox.put_nowait(_CLOSE)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._finished.wait(), wait)

    async def run(self) -> LinkClosed:
        """Carry frames until the link ends; say why it ended. Every open stream then fails."""
        tasks = [
            self._loop.create_task(self._read()),
            self._loop.create_task(self._write()),
            self._loop.create_task(self._keepalive()),
        ]
        cancelled = False
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            outcome = _outcome(next(iter(done)))
        except asyncio.CancelledError:  # our side shuts down
            cancelled = True
            outcome = LinkClosed(CLOSE_GOING_AWAY, "shutting down")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.closed = outcome
        for stream in list(self._streams.values()):
            stream._fail(f"the link to the workspace agent was lost: {outcome.reason or outcome.code}")
        self._streams.clear()
        with contextlib.suppress(Exception):
            # A close reason must fit one control frame (123 bytes).
            await asyncio.wait_for(self._socket.close(outcome.code, outcome.reason[:100]), 5)
        self._finished.set()
        if cancelled:
            raise asyncio.CancelledError
        return outcome

    async def _read(self) -> None:
        while True:
            data = await self._socket.recv()
            self._last_seen = self._loop.time()
            try:
                self._dispatch(decode(data))
            except ProtocolError as exc:
                raise LinkClosed(CLOSE_PROTOCOL, f"protocol error: {exc}") from None

    def _dispatch(self, frame: Frame) -> None:
        kind = frame.kind
        if kind is Kind.DATA:
            if stream := self._streams.get(frame.stream):
                stream._feed(frame.body, frame.end)
        elif kind is Kind.RESPONSE:
            if stream := self._streams.get(frame.stream):
                if stream.head.done():
                    raise ProtocolError(f"stream {frame.stream}: a second RESPONSE")
                assert frame.head is not None
                stream.head.set_result(frame.head)
                stream._feed(frame.body, frame.end)
        elif kind is Kind.WINDOW:
            if stream := self._streams.get(frame.stream):
                stream._on_window(window_increment(frame))
        elif kind is Kind.OPEN:
            if self._on_open is None:
                raise ProtocolError("this side serves no requests")
            if frame.stream in self._streams or frame.stream == 0:
                raise ProtocolError(f"stream {frame.stream} is already open")
            stream = Stream(self, frame.stream)
            if len(self._streams) >= MAX_STREAMS:
                stream.reset(f"{MAX_STREAMS} requests are in flight on the link already")
                return
            self._streams[stream.id] = stream
            stream._feed(frame.body, frame.end)
            assert frame.head is not None
            self._on_open(stream, frame.head)
        elif kind is Kind.CANCEL:
            if stream := self._streams.pop(frame.stream, None):
                stream._fail("cancelled by the caller")
        elif kind is Kind.RESET:
            if stream := self._streams.pop(frame.stream, None):
                message = (frame.head or {}).get("message")
                stream._fail(str(message) if message else "reset by the peer")
        elif kind is Kind.PING:
            self.enqueue(encode(Kind.PONG, 0, body=frame.body))

    async def _write(self) -> None:
        while True:
            frame = await self._outbox.get()
            if frame is _CLOSE:
                assert self._close_request is not None
                raise self._close_request
            await self._socket.send(frame)

    async def _keepalive(self) -> None:
        tick = min(self._ping_interval, self._silence_limit / 9)
        last_ping = self._loop.time()
        self.enqueue(encode(Kind.PING))
        while True:
            await asyncio.sleep(tick)
            now = self._loop.time()
            if now - self._last_seen >= self._silence_limit:
                raise LinkClosed(CLOSE_SILENT, f"nothing arrived for {self._silence_limit:g} s")
            if now - last_ping >= self._ping_interval - tick / 2:
                self.enqueue(encode(Kind.PING))
                last_ping = now


def _outcome(task: asyncio.Task[None]) -> LinkClosed:
    if task.cancelled():
        return LinkClosed(CLOSE_GOING_AWAY, "shutting down")
    exc = task.exception()
    if isinstance(exc, LinkClosed):
        return exc
    if isinstance(exc, ProtocolError):
        return LinkClosed(CLOSE_PROTOCOL, f"protocol error: {exc}")
    logger.error("the link failed", exc_info=exc)
    return LinkClosed(1011, f"internal error: {type(exc).__name__}")
