"""HTTP/1.x written by hand on a raw socket, for what an HTTP client library hides: pipelined
requests, HTTP/1.0, ``Connection: close``, the exact bytes of an answer. Answers are parsed by h11."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

import h11

from .agent import TOKEN

TIMEOUT_S = 30.0


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]  # in order, names lower case
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n == name), None)

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    method: str,
    target: str,
    body: bytes = b"",
    *,
    version: str = "1.1",
    token: str | None = TOKEN,
    headers: dict[str, str] | None = None,
) -> bytes:
    """One request's bytes, with ``Content-Length`` (and the bearer token unless ``token`` is None)."""
    lines = [f"{method} {target} HTTP/{version}", "Host: 127.0.0.1"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def call(
    tool: str, arguments: dict[str, Any] | None = None, target: str = "/api/v0/mcp/call-tool", **kw: Any
) -> bytes:
    """A plain call-tool request's bytes (``kw`` as for :func:`request`)."""
    body = json.dumps({"tool_name": tool, "arguments": arguments or {}}).encode()
    return request("POST", target, body, **kw)


class Connection:
    """One raw connection to 127.0.0.1:``port``; its answers are read in order (each one ends
    where the next begins). A context manager: closed on exit."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
        self._left = b""  # bytes past the last answer read
        self.closed = False  # the server closed the connection

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        """``data`` (one request, or several pipelined) in one write."""
        self.sock.sendall(data)

    def read(self) -> Answer:
        # One h11 client per answer: h11 has no pipelining, but it hands back what follows an answer.
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="POST", target="/", headers=[("Host", "x"), ("Content-Length", "0")]))
        conn.send(h11.EndOfMessage())
        if self._left:  # (b"" would tell h11 the connection has closed)
            conn.receive_data(self._left)
        status, headers, body = 0, [], b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = self.sock.recv(65536)
                self.closed = self.closed or not data
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = [(n.decode().lower(), v.decode()) for n, v in event.headers]
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self._left = conn.trailing_data[0]
                return Answer(status, headers, body)
            else:
                raise AssertionError(f"unexpected {event!r} while reading an answer")

    def read_many(self, count: int) -> list[Answer]:
        return [self.read() for _ in range(count)]

    def at_eof(self) -> bool:
        """Whether the server has closed the connection, with nothing more sent (waits for it)."""
        if self._left:
            return False
        while not self.closed:
            data = self.sock.recv(65536)
            if data:
                self._left += data
                return False
            self.closed = True
        return True
