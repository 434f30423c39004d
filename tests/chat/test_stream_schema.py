"""Every chunk the chat stream sends is a valid AI SDK UI message chunk: checked against the `ai`
package's own schema (``uiMessageChunkSchema``, ai 7.x in tests/node_modules) by a small Node
script, for the chunks of real turns (text, tool calls, approval requests and answers, a denial,
an error result, a model failure, an interrupt, a retry) and for every chunk maker in
``workdock.chat.events``."""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.chat.conftest import Api
from tests.chat.fake_openai import Call, Fail, FakeOpenAI, Reply
from tests.chat.test_approvals import pending
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.conftest import require, wait_until
from tests.support.agent import RunningAgent
from tests.support.helpers import TESTS
from workdock.chat import events
from workdock.chat.store.models import Message

pytestmark = pytest.mark.anyio

SCRIPT = Path(__file__).with_name("ai_sdk_chunks.mjs")


def validate(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    require(node is not None, "node is not on PATH")
    require((TESTS / "node_modules" / "ai").exists(), "the `ai` package is missing: run `npm ci` in tests/")
    assert node is not None
    answer = subprocess.run(
        [node, str(SCRIPT)],
        input="\n".join(json.dumps(c) for c in chunks) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=TESTS,
        check=True,
    )
    return [json.loads(line) for line in answer.stdout.splitlines()]


def every_event_maker() -> list[dict[str, Any]]:
    """One chunk from each function of ``events`` that makes a chunk."""
    row = Message(
        id=1, chat_id="c", role="assistant", parts=[], created_at=datetime.now(UTC), superseded=False
    )
    samples: dict[str, Any] = {
        "message_id": "m1",
        "part_id": "p1",
        "delta": "d",
        "call_id": "c1",
        "tool_name": "read_file",
        "args": {"path": "x"},
        "output": {"content": []},
        "error_text": "bad",
        "text": "oops",
        "state": "idle",
        "message_ids": [1],
        "row": row,
        "approved": False,
        "reason": "no",
        "progress": 1.0,
        "total": 2.0,
        "message": "half",
        "elicitation_id": "e1",
        "request": {"message": "name?", "requestedSchema": {"type": "object", "properties": {}}},
    }
    made = []
    for name, fn in inspect.getmembers(events, inspect.isfunction):
        if fn.__module__ != events.__name__ or name in ("message_json", "interrupted_part"):
            continue
        params = inspect.signature(fn).parameters
        made.append(fn(**{p: samples[p] for p in params if p in samples}))
    return made


async def test_every_chunk_the_server_streams_fits_the_ai_sdk_schema(
    admin_api: Api, fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent], workspace_dir: Path
) -> None:
    agent = start_agent({})
    (workspace_dir / "notes.txt").write_text("hello\n")
    chat_id = await new_chat(admin_api, agent.url, approval_policy="ask")
    streamed: list[dict[str, Any]] = []

    async def watched(action: Callable[[], Awaitable[Any]]) -> None:
        """Run ``action`` with a watcher subscribed first; keep the turn's chunks."""
        seen: list[dict[str, Any]] = []
        ended = turn_ended()

        def until(event: dict[str, Any]) -> bool:
            seen.append(event)
            return ended(event)

        async with anyio.create_task_group() as group:
            group.start_soon(admin_api.events, chat_id, until)
            await wait_until(lambda: bool(seen), timeout=30, message="the watcher to subscribe")
            await action()
        streamed.extend(seen)

    async def send(content: str) -> None:
        await admin_api.post(f"/chats/{chat_id}/messages", {"content": content}, expect=202)

    async def answer(content: str, body: dict[str, Any]) -> None:
        await send(content)
        [call] = await pending(admin_api, chat_id)
        await admin_api.post(f"/chats/{chat_id}/approvals/{call['tool_call_id']}", body)

    fake_model.add(
        Reply(
            text="Reading and writing.",
            calls=[
                Call("read_file", {"path": "notes.txt"}),
                Call("write_file", {"path": "o.txt", "content": "o"}),
            ],
        ),
        Reply(text="written"),
        Reply(calls=[Call("execute", {"command": "true"}), Call("read_file", {"path": "missing.txt"})]),
        Reply(text="denied"),
        Fail(401, "Incorrect API key provided"),
        Reply(text="again"),
    )
    await watched(lambda: answer("approve one", {"approve": True}))
    await watched(lambda: answer("deny one", {"approve": False, "reason": "no"}))
    await watched(lambda: send("a model failure"))
    await watched(lambda: admin_api.post(f"/chats/{chat_id}/retry", expect=202))  # data-superseded
    hold = threading.Event()
    fake_model.add(Reply(text="cut off", hold=hold))

    async def interrupt() -> None:
        await send("interrupt me")
        await wait_until(lambda: len(fake_model.requests) == 7, timeout=30, message="the held turn")
        await admin_api.post(f"/chats/{chat_id}/interrupt")

    try:
        await watched(interrupt)
    finally:
        hold.set()

    kinds = {c["type"] for c in streamed}
    expected = {
        "start",
        "start-step",
        "text-start",
        "text-delta",
        "text-end",
        "tool-input-start",
        "tool-input-delta",
        "tool-input-available",
        "tool-approval-request",
        "tool-approval-response",
        "tool-output-available",
        "tool-output-error",
        "tool-output-denied",
        "finish-step",
        "finish",
        "error",
        "abort",
        "data-status",
        "data-message",
        "data-superseded",
    }
    assert expected <= kinds, expected - kinds
    chunks = streamed + every_event_maker()
    results = validate(chunks)
    assert len(results) == len(chunks)
    bad = [r for r in results if not r["ok"]]
    assert not bad, bad
    # The schema is not a pushover: a chunk missing a required field is refused.
    refused = validate(
        [{"type": "tool-approval-request", "toolCallId": "c1"}, {"type": "tool-output-denied"}]
    )
    assert [r["ok"] for r in refused] == [False, False]
