"""The size limit's line reader: lines over the limit are dropped as they arrive, and what is kept
of them finds the request they answered."""

from __future__ import annotations

import json

import pytest

from workdock.mcp.limits import PEEK, LineSplitter, Oversize, parse_limit


def split(data: bytes, limit: int, chunk: int) -> list[bytes | Oversize]:
    splitter = LineSplitter(limit)
    lines: list[bytes | Oversize] = []
    for start in range(0, len(data), chunk):
        lines += splitter.feed(data[start : start + chunk])
    return lines + splitter.end()


def test_lines_up_to_the_limit_pass_whole_and_longer_ones_are_dropped() -> None:
    long = b'{"jsonrpc":"2.0","id":7,"result":{"text":"' + b"x" * 5000 + b'"}}'
    data = b"a\n" + b"b" * 2000 + b"\n" + long + b"\n\nlast"
    for chunk in (1, 7, 64, 100_000):  # however the bytes arrive
        lines = split(data, limit=2000, chunk=chunk)
        assert lines[:2] == [b"a", b"b" * 2000] and lines[3:] == [b"", b"last"]
        dropped = lines[2]
        assert isinstance(dropped, Oversize) and dropped.size == len(long)
        assert len(dropped.head) == len(dropped.tail) == PEEK  # all that is kept of it
        assert (dropped.kind, dropped.request_id) == ("result", 7)


@pytest.mark.parametrize(
    ("message", "kind", "request_id"),
    [
        ({"jsonrpc": "2.0", "id": 3, "result": {"t": "x" * 5000}}, "result", 3),  # Python, Go, Rust SDKs
        ({"result": {"t": "x" * 5000}, "jsonrpc": "2.0", "id": 'a"b'}, "result", 'a"b'),  # TypeScript SDK
        ({"id": -2, "error": {"code": 1, "message": "x" * 5000}}, "error", -2),
        ({"jsonrpc": "2.0", "method": "notifications/message", "params": {"d": "x" * 5000}}, "method", None),
        ({"jsonrpc": "2.0", "result": {"t": "x" * 5000}, "id": 9, "extra": "y" * 2000}, "result", None),
    ],
)
def test_a_dropped_message_tells_what_it_was_and_whom_it_answered(
    message: dict, kind: str, request_id: object
) -> None:
    for prefix in (b"", b"data: "):  # a stdio line, or an SSE data line
        [dropped] = split(prefix + json.dumps(message).encode(), limit=2000, chunk=512)
        assert isinstance(dropped, Oversize)
        assert (dropped.kind, dropped.request_id) == (kind, request_id)


def test_the_limit_setting() -> None:
    assert parse_limit(None) == parse_limit("") == 16 * 1024 * 1024
    assert parse_limit(" 1048576 ") == 1048576
    for bad in ("16MiB", "-1", "1000"):
        with pytest.raises(ValueError, match="WORKDOCK_MAX_RESULT_BYTES"):
            parse_limit(bad)
