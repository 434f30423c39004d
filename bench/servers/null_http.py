"""An HTTP server that answers at once: the load generator's own ceiling, measured in the same run.

    python bench/servers/null_http.py PORT ANSWER.json

``ANSWER.json`` holds what the measured proxy answered to one call: ``{"headers": [[name, value],
...], "body": "..."}``. Every request is answered with those headers and that body, except MCP
JSON-RPC (a body with ``"method"``): ``initialize`` gets a session, a notification 202, and any
other request the answer's ``result`` under the request's own id. Nothing is forwarded anywhere,
so what a client measures against this server is what the client itself costs: no proxy in front
of the same server can be faster than this, and a target beyond it cannot be shown with that client.

Raw asyncio with uvloop and httptools (both come with uvicorn[standard]) keeps the server's own cost
per request near 0.1 ms, in a process of its own.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httptools
import orjson
import uvloop

SESSION = b"null-session"


class Answers:
    def __init__(self, recorded: dict[str, Any]) -> None:
        skip = {"content-length", "mcp-session-id"}
        self.headers = [(k.encode(), v.encode()) for k, v in recorded["headers"] if k.lower() not in skip]
        self.body = recorded["body"].encode()
        parsed = json.loads(recorded["body"])
        self.rpc_result = parsed.get("result") if isinstance(parsed, dict) else None

    def respond(self, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if b'"method"' not in body:
            return 200, self.headers, self.body
        message = orjson.loads(body)
        if "id" not in message:
            return 202, [], b""
        if message["method"] == "initialize":
            result: Any = {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "null", "version": "1"},
            }
            extra = [(b"mcp-session-id", SESSION)]
        else:
            result, extra = self.rpc_result, []
        answer = orjson.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result})
        return 200, [*self.headers, *extra], answer


class Connection(asyncio.Protocol):
    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self.parser = httptools.HttpRequestParser(self)
        self.parts: list[bytes] = []
        self.transport: Any = None  # uvloop's TCPTransport (not an asyncio.Transport subclass)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_body(self, body: bytes) -> None:
        self.parts.append(body)

    def on_message_complete(self) -> None:
        status, headers, body = self.answers.respond(b"".join(self.parts))
        self.parts = []
        head = [b"HTTP/1.1 %d %s\r\n" % (status, b"OK" if status == 200 else b"Accepted")]
        head += [name + b": " + value + b"\r\n" for name, value in headers]
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)


async def serve(port: int, answers: Answers) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(answers), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with open(sys.argv[2]) as f:
        recorded = json.load(f)
    uvloop.run(serve(int(sys.argv[1]), Answers(recorded)))
