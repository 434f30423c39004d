"""A plain HTTP server on 127.0.0.1 that answers as a test tells it and records every request.

For what a real MCP server will not do on purpose: answer 401, fail with a 500, redirect
elsewhere. It runs in a thread of the test process (stdlib `http.server`, one thread per
connection) and is stopped by the `http_stub` fixture.

    stub = http_stub(lambda request: Answer(307, {"location": other.url + "/mcp"}))
    ...
    assert stub.requests == []
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class StubServer:
    def __init__(self, answer: Callable[[Recorded], Answer]) -> None:
        self.answer = answer
        self.requests: list[Recorded] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                recorded = Recorded(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                stub.requests.append(recorded)
                answer = stub.answer(recorded)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-stub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the HTTP stub did not stop"


@pytest.fixture
def http_stub() -> Iterator[Callable[[Callable[[Recorded], Answer]], StubServer]]:
    """Start stub servers (each answering with the given function); all are stopped after the test."""
    started: list[StubServer] = []

    def start(answer: Callable[[Recorded], Answer]) -> StubServer:
        started.append(StubServer(answer))
        return started[-1]

    yield start
    for stub in started:
        stub.stop()
