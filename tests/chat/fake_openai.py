"""A scripted OpenAI-compatible model: a real HTTP server that streams chat-completion chunks.

The chat server reaches it through pydantic-ai's real OpenAI provider (``OPENAI_BASE_URL``).
Each request takes the next entry of the script:

- ``Reply(text=...)``: stream the text in a few deltas, finish with ``stop``;
- ``Reply(calls=[Call(name, args), ...])``: stream tool calls (their argument deltas interleaved,
  as parallel calls arrive), finish with ``tool_calls``;
- ``hold``: a ``threading.Event`` the stream waits on after its first chunk (interrupt and
  restart tests keep a turn running with it);
- ``Fail(status, message)``: answer with that HTTP status and an OpenAI-style error body
  (``{"error": {"message", "type", "code"}}``), as a provider refusing the request does;
- a callable: gets the request body and returns a ``Reply``.

Every request body is kept in ``requests`` so tests can check what the model was sent.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


@dataclass
class Call:
    name: str
    args: dict[str, Any]
    id: str | None = None  # the tool call id; call_<n> by default


@dataclass
class Reply:
    text: str = ""
    calls: list[Call] = field(default_factory=list)
    hold: threading.Event | None = None


@dataclass
class Fail:
    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None


Entry = Reply | Fail | Callable[[dict[str, Any]], Reply]


def _chunk(
    delta: dict[str, Any] | None, finish: str | None = None, usage: dict[str, int] | None = None
) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [],
    }
    if delta is not None:
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class FakeOpenAI:
    def __init__(self) -> None:
        self.script: list[Entry] = []
        self.requests: list[dict[str, Any]] = []
        self.default: Reply | Fail = Reply(text="done")
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self._call_seq = 0

    def add(self, *entries: Entry) -> None:
        with self._lock:
            self.script.extend(entries)

    async def _completions(self, request: Request) -> StreamingResponse | JSONResponse:
        body = await request.json()
        with self._lock:
            self.requests.append(body)
            entry = self.script.pop(0) if self.script else self.default
        if isinstance(entry, Fail):
            error = {"message": entry.message, "type": entry.type, "code": entry.code}
            return JSONResponse({"error": error}, status_code=entry.status)
        reply = entry(body) if callable(entry) else entry
        if not body.get("stream"):
            return JSONResponse({"error": {"message": "this fake only streams"}}, status_code=400)
        return StreamingResponse(self._stream(reply), media_type="text/event-stream")

    async def _stream(self, reply: Reply):
        yield _chunk({"role": "assistant", "content": ""})
        if reply.hold is not None:
            while not reply.hold.is_set():  # the event is set from the test's thread
                await asyncio.sleep(0.01)
        if reply.text:
            words = reply.text.split(" ")
            for index, word in enumerate(words):
                yield _chunk({"content": word if index == 0 else " " + word})
        ids = []
        for index, call in enumerate(reply.calls):
            self._call_seq += 1
            ids.append(call.id or f"call_{self._call_seq}")
            yield _chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": ids[-1],
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
        # Argument fragments of parallel calls arrive interleaved, as real providers send them.
        pieces = [self._split(json.dumps(call.args)) for call in reply.calls]
        for round_ in range(max((len(p) for p in pieces), default=0)):
            for index, parts in enumerate(pieces):
                if round_ < len(parts):
                    yield _chunk({"tool_calls": [{"index": index, "function": {"arguments": parts[round_]}}]})
        yield _chunk({}, finish="tool_calls" if reply.calls else "stop")
        yield _chunk(None, usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
        yield b"data: [DONE]\n\n"

    @staticmethod
    def _split(text: str) -> list[str]:
        size = max(1, len(text) // 3)
        return [text[i : i + size] for i in range(0, len(text), size)]

    def start(self, port: int) -> None:
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._completions, methods=["POST"]),
                Route("/chat/completions", self._completions, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-openai", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise AssertionError("the fake OpenAI server did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}/v1"

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    # ---- what the model was sent ----------------------------------------------------------------

    def tool_messages(self, request_index: int) -> list[dict[str, Any]]:
        return [m for m in self.requests[request_index]["messages"] if m.get("role") == "tool"]

    def tool_names(self, request_index: int) -> list[str]:
        return [t["function"]["name"] for t in self.requests[request_index].get("tools", [])]
