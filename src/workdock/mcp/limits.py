"""The size limit on what one MCP server may send in one message (a tool result, usually).

A proxy that passes results on must bound what it buffers: a server can send
one 50 MB line. Every transport reads through a :class:`LineSplitter` (stdio
lines, SSE lines) or a byte count (JSON bodies): a message over the limit is
never held whole. What is kept of it (its size, its first and last bytes) is
enough to find the request it answered, which then gets an error saying so;
the connection stays usable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # imported where used: the CLI reads the constants and should start fast
    import mcp_types as types

DEFAULT_MAX_RESULT_BYTES = 16 * 1024 * 1024
MAX_RESULT_ENV = "WORKDOCK_MAX_RESULT_BYTES"
MIN_RESULT_BYTES = 64 * 1024  # below this even a modest tools/list would not fit

PEEK = 1024  # bytes kept of each end of a dropped message: where its id is
_OVERSIZE = "workdock: message over the size limit"

_ID = r'(-?\d+|"(?:[^"\\]|\\.)*")'
_SSE_DATA = r"(?:data:[ ]?)?"
# `{"jsonrpc": "2.0", "id": 7, ...` or `{"id": 7, ...`: among the first keys (Python, Go, Rust SDKs) ...
_HEAD_ID = re.compile(
    rb"^\s*" + _SSE_DATA.encode() + rb'\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*' + _ID.encode()
)
# ... or `..., "jsonrpc": "2.0", "id": 7}`: the last key (the TypeScript SDK writes the result first).
_TAIL_ID = re.compile(rb'"id"\s*:\s*' + _ID.encode() + rb'\s*(?:,\s*"jsonrpc"\s*:\s*"2\.0"\s*)?\}\s*$')
# What the message is: the first of method/result/error after the envelope keys.
_KIND = re.compile(
    rb"^\s*"
    + _SSE_DATA.encode()
    + rb'\{\s*(?:"(?:jsonrpc|id)"\s*:\s*(?:"(?:[^"\\]|\\.)*"|-?\d+|null)\s*,\s*)*"(method|result|error)"\s*:'
)


def parse_limit(value: str | None) -> int:
    """``WORKDOCK_MAX_RESULT_BYTES`` (or the option's value) as a number of bytes; the default when unset."""
    if value is None or not value.strip():
        return DEFAULT_MAX_RESULT_BYTES
    try:
        number = int(value.strip())
    except ValueError:
        raise ValueError(f"{MAX_RESULT_ENV}={value!r}: expected a number of bytes") from None
    if number < MIN_RESULT_BYTES:
        raise ValueError(f"{MAX_RESULT_ENV}={value!r}: at least {MIN_RESULT_BYTES} bytes")
    return number


def describe_oversize(size: int | None, limit: int) -> str:
    sent = f"a message of {size:,} bytes, over" if size is not None else "a message over"
    return (
        f"the server sent {sent} the limit of {limit:,} bytes; it was dropped "
        f"(raise the limit with --max-result-bytes or {MAX_RESULT_ENV})"
    )


def oversize_error(size: int | None, limit: int) -> types.ErrorData:
    """The error a call gets in place of a result over the limit."""
    import mcp_types as types

    return types.ErrorData(
        code=types.INTERNAL_ERROR,
        message=describe_oversize(size, limit),
        data={"reason": _OVERSIZE, "size": size, "limit": limit},
    )


def is_oversize(error: types.ErrorData) -> bool:
    return isinstance(error.data, dict) and error.data.get("reason") == _OVERSIZE


def error_line(request_id: types.RequestId | None, error: types.ErrorData) -> bytes:
    """One JSON-RPC error message, serialised as a line of the wire."""
    import mcp_types as types

    message = types.JSONRPCError(jsonrpc="2.0", id=request_id, error=error)
    return message.model_dump_json(by_alias=True, exclude_unset=True).encode()


@dataclass
class Oversize:
    """A line that was over the limit: not kept, only its size and both ends."""

    size: int
    head: bytes
    tail: bytes

    @property
    def kind(self) -> Literal["method", "result", "error"] | None:
        """``method`` for a request or notification, ``result``/``error`` for a response, None if unclear."""
        match = _KIND.match(self.head)
        return match.group(1).decode() if match else None  # type: ignore[return-value]

    @property
    def request_id(self) -> types.RequestId | None:
        match = _HEAD_ID.match(self.head) or _TAIL_ID.search(self.tail)
        if match is None:
            return None
        value: Any = json.loads(match.group(1))
        return value if isinstance(value, int | str) else None


class LineSplitter:
    """Splits a byte stream into lines (without their ``\\n``) of at most ``limit`` bytes each.

    A longer line is dropped as it arrives and comes out as an :class:`Oversize`: however long it
    is, no more than ``limit`` bytes (plus one chunk) are ever held.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self._dropping: Oversize | None = None

    def feed(self, chunk: bytes) -> list[bytes | Oversize]:
        lines: list[bytes | Oversize] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._add(chunk[start:end])
            lines.append(self._take())
            start = end + 1
        self._add(chunk[start:])
        return lines

    def end(self) -> list[bytes | Oversize]:
        """What is left when the stream ends: a last line without its newline, if any."""
        if self._dropping is None and not self._parts:
            return []
        return [self._take()]

    def _add(self, piece: bytes) -> None:
        if not piece:
            return
        dropping = self._dropping
        if dropping is not None:
            dropping.size += len(piece)
            dropping.tail = (dropping.tail + piece)[-PEEK:]
            return
        if self._size + len(piece) <= self.limit:
            self._parts.append(piece)
            self._size += len(piece)
            return
        # Over the limit: keep both ends, let go of the rest.
        self._parts.append(piece)
        self._dropping = Oversize(
            size=self._size + len(piece), head=_head(self._parts, PEEK), tail=_tail(self._parts, PEEK)
        )
        self._parts, self._size = [], 0

    def _take(self) -> bytes | Oversize:
        if self._dropping is not None:
            dropped, self._dropping = self._dropping, None
            return dropped
        line = b"".join(self._parts)
        self._parts, self._size = [], 0
        return line


def _head(parts: list[bytes], size: int) -> bytes:
    kept: list[bytes] = []
    for part in parts:
        kept.append(part[: size - sum(map(len, kept))])
        if sum(map(len, kept)) >= size:
            break
    return b"".join(kept)


def _tail(parts: list[bytes], size: int) -> bytes:
    kept: list[bytes] = []
    for part in reversed(parts):
        kept.insert(0, part[-(size - sum(map(len, kept))) :])
        if sum(map(len, kept)) >= size:
            break
    return b"".join(kept)
