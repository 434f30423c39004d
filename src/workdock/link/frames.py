"""The link's frames: each WebSocket binary message is one frame (docs/agent-link.md).

A frame is a 6-byte header (kind, flags, stream id) and a payload. OPEN and RESPONSE carry a
JSON head (length-prefixed) and then the first bytes of the body; DATA carries body bytes;
WINDOW a 4-byte credit; RESET a JSON head with the reason; CANCEL, PING and PONG nothing
that matters. Bodies of any size travel as frames of at most MAX_BODY bytes each.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import orjson

# Offered and chosen as the WebSocket subprotocol: a new, incompatible frame format gets a new name.
PROTOCOL = "workdock-link.1"

MAX_BODY = 128 * 1024  # body bytes in one frame: a large body never holds the link for long
MAX_HEAD = 64 * 1024  # an OPEN/RESPONSE head (method, target, headers) or a RESET reason
MAX_MESSAGE = MAX_BODY + MAX_HEAD + 16  # what either side accepts as one WebSocket message
INITIAL_WINDOW = 512 * 1024  # bytes a side may send on a stream before the receiver grants more
MAX_STREAMS = 256  # requests in flight on one link

_HEADER = struct.Struct("!BBI")
_LENGTH = struct.Struct("!I")


class Kind(IntEnum):
    OPEN = 1  # server → agent: a request's head (and first body bytes)
    RESPONSE = 2  # agent → server: the response's head (and first body bytes)
    DATA = 3  # body bytes, either way
    WINDOW = 4  # the sender of this frame has consumed N more bytes of the stream: send them
    CANCEL = 5  # server → agent: the caller gave up (the agent's app sees http.disconnect)
    RESET = 6  # either way: the stream failed; the head says why
    PING = 7  # either way, stream 0: answered by PONG
    PONG = 8


END = 0x01  # flag: the sender's last frame on this stream


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame: the link is closed."""


@dataclass(slots=True)
class Frame:
    kind: Kind
    stream: int
    flags: int
    head: dict[str, Any] | None
    body: bytes

    @property
    def end(self) -> bool:
        return bool(self.flags & END)


def encode(
    kind: Kind, stream: int = 0, *, end: bool = False, head: dict[str, Any] | None = None, body: bytes = b""
) -> bytes:
    header = _HEADER.pack(kind, END if end else 0, stream)
    if kind in (Kind.OPEN, Kind.RESPONSE, Kind.RESET):
        encoded = orjson.dumps(head or {})
        return b"".join((header, _LENGTH.pack(len(encoded)), encoded, body))
    return header + body if body else header


def window(stream: int, increment: int) -> bytes:
    return _HEADER.pack(Kind.WINDOW, 0, stream) + _LENGTH.pack(increment)


def window_increment(frame: Frame) -> int:
    if len(frame.body) != _LENGTH.size:
        raise ProtocolError("a WINDOW frame carries a 4-byte increment")
    increment: int = _LENGTH.unpack(frame.body)[0]
    return increment


def decode(data: bytes) -> Frame:
    if len(data) < _HEADER.size:
        raise ProtocolError(f"a frame of {len(data)} bytes is shorter than its header")
    if len(data) > MAX_MESSAGE:
        raise ProtocolError(f"a frame of {len(data)} bytes is over the limit of {MAX_MESSAGE}")
    raw_kind, flags, stream = _HEADER.unpack_from(data)
    try:
        kind = Kind(raw_kind)
    except ValueError:
        raise ProtocolError(f"unknown frame kind {raw_kind}") from None
    offset = _HEADER.size
    head: dict[str, Any] | None = None
    if kind in (Kind.OPEN, Kind.RESPONSE, Kind.RESET):
        if len(data) < offset + _LENGTH.size:
            raise ProtocolError(f"a {kind.name} frame without its head")
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        if length > MAX_HEAD or offset + length > len(data):
            raise ProtocolError(f"a {kind.name} head of {length} bytes does not fit the frame")
        try:
            head = orjson.loads(data[offset : offset + length])
        except orjson.JSONDecodeError as exc:
            raise ProtocolError(f"a {kind.name} head that is not JSON: {exc}") from None
        if not isinstance(head, dict):
            raise ProtocolError(f"a {kind.name} head must be a JSON object")
        offset += length
    body = data[offset:]
    if len(body) > MAX_BODY:
        raise ProtocolError(f"{len(body)} body bytes in one frame (at most {MAX_BODY})")
    return Frame(kind, stream, flags, head, body)
