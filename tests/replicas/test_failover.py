"""kill -9 of the replica running a turn: another one takes the chat over once its lease lapses,
the tool call that was in flight is never run again, a watcher of the dead replica resumes on a
survivor with Last-Event-ID and misses nothing, and the chat's queued message then runs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.replicas.conftest import Service, logged, new_chat, new_workspace
from tests.support.agent import RunningAgent
from tests.support.helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

INTERRUPTED_CALL = "interrupted: the server running this turn stopped"


async def read_until_cut(
    http: httpx2.AsyncClient, chat_id: str, into: list[tuple[str, dict[str, Any]]], headers: dict[str, str]
) -> None:
    """Read the chat's stream into ``into`` until the connection is cut (its server was killed)."""
    try:
        async with http.stream("GET", f"/api/v0/chats/{chat_id}/stream", headers=headers) as response:
            event_id, data = "", []
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    into.append((event_id, json.loads("\n".join(data))))
                    data = []
    except httpx2.TransportError:
        return


@pytest.mark.timeout(240)
async def test_a_killed_replicas_turn_is_taken_over_and_its_watcher_misses_nothing(
    start_service: Callable[..., Service],
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    slow_servers: dict[str, Any],
    tmp_path: Path,
) -> None:
    service = start_service(3)
    agent = start_agent(slow_servers)
    agent.wait_state("slow", "ready")
    first = service.apis[0]
    chat_id = await new_chat(first, await new_workspace(first, agent.url))
    fake_model.add(
        Reply(text="calling it", calls=[Call("slow__sleep", {"seconds": 600})]),
        Reply(text="after the takeover"),
    )
    await first.post(f"/chats/{chat_id}/messages", {"content": "sleep"}, expect=202)
    calls = tmp_path / "calls.jsonl"
    await wait_until(lambda: logged(calls), timeout=30, message="the tool call to start")
    holder = await service.wait_holder(chat_id)
    owner = service.index_at(holder)
    survivor = service.apis[(owner + 1) % 3]

    # A watcher on the replica running the turn, from the turn's start; it waits in the call.
    before: list[tuple[str, dict[str, Any]]] = []
    watcher = httpx2.AsyncClient(base_url=service.replicas[owner].url, headers=first.http.headers, timeout=30)
    async with anyio.create_task_group() as tg:
        tg.start_soon(read_until_cut, watcher, chat_id, before, {})
        await wait_until(
            lambda: any(e["type"] == "tool-input-available" for _, e in before),
            message="the watcher to see the call",
        )

        # Everything it saw is stored (the flusher runs within milliseconds), then the replica dies.
        async def stored() -> bool:
            rows = await service.fetch("SELECT max(seq) AS last FROM chat_events WHERE chat_id = $1", chat_id)
            return rows[0]["last"] is not None and rows[0]["last"] >= int(before[-1][0])

        await wait_until(stored, message="the watcher's events to be stored")
        await survivor.post(f"/chats/{chat_id}/messages", {"content": "queued behind"}, expect=202)
        service.replicas[owner].kill()
        killed = time.monotonic()
    await watcher.aclose()

    # Back on a survivor, after the last event it had: the takeover follows in the same stream.
    last_id = before[-1][0]
    after = await survivor.events(
        chat_id,
        lambda e: e["type"] == "data-status" and e["data"]["status"] == "idle",
        last_event_id=last_id,
        timeout=90,
    )
    usable = time.monotonic() - killed
    kinds = [e["type"] for _, e in after]
    assert kinds.index("tool-output-error") < kinds.index("abort") < kinds.index("start")
    statuses = [e["data"]["status"] for _, e in after if e["type"] == "data-status"]
    assert statuses[0] == "interrupted" and statuses[-1] == "idle"
    assert all(int(i) > int(last_id) for i, _ in after)

    # It missed nothing: what it saw before and after is the whole stored stream of the two turns.
    turn_start = int(before[0][0])
    replay = await service.apis[(owner + 2) % 3].events(
        chat_id,
        lambda e: e["type"] == "data-status" and e["data"]["status"] == "idle",
        last_event_id=str(turn_start - 1),
    )
    assert before + after == replay

    # The call that was in flight ran once and never again; it is stored as interrupted.
    assert len(logged(calls)) == 1
    messages = await survivor.messages(chat_id)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "user", "assistant"]
    [result] = messages[2]["parts"]
    assert result["is_error"] and result["content"] == [{"type": "text", "text": INTERRUPTED_CALL}]
    assert messages[3]["parts"][0]["type"] == "interrupted" and messages[3]["parts"][0]["reason"] == "server"
    assert messages[-1]["parts"] == [{"type": "text", "text": "after the takeover"}]
    # The model was told, in the next turn, that the call was interrupted.
    told = [m["content"] for m in fake_model.requests[-1]["messages"] if m["role"] == "tool"]
    assert len(told) == 1 and INTERRUPTED_CALL in told[0]
    print(f"killed replica's chat usable again after {usable:.1f} s (lease 30 s)")
