"""The SSE stream: ids, Last-Event-ID replay, several watchers, queueing and interrupts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from tests.chat.conftest import Api
from tests.chat.fake_openai import FakeOpenAI, Reply
from tests.chat.test_turn_e2e import is_idle, new_chat
from tests.conftest import wait_until
from tests.support.agent import RunningAgent

pytestmark = pytest.mark.anyio


@pytest.fixture
def agent(start_agent: Callable[..., RunningAgent]) -> RunningAgent:
    return start_agent({})


async def test_last_event_id_replays_what_was_missed_and_watchers_see_the_same(
    admin_api: Api, fake_model: FakeOpenAI, agent: RunningAgent
) -> None:
    chat_id = await new_chat(admin_api, agent.url)
    fake_model.add(Reply(text="one two three four five six"))
    results: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    connected: set[str] = set()

    async def watch(name: str) -> None:
        def until(event: dict[str, Any]) -> bool:
            connected.add(name)  # the first event (the idle snapshot) means it is subscribed
            return event["type"] == "finish"

        results[name] = await admin_api.events(chat_id, until)

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch, "a")
        tg.start_soon(watch, "b")
        await wait_until(lambda: connected == {"a", "b"}, message="both watchers to subscribe")
        await admin_api.post(f"/chats/{chat_id}/messages", {"content": "count"}, expect=202)

    turn_a = [
        (i, e) for i, e in results["a"] if e["type"] != "data-status" or e["data"]["status"] == "running"
    ]
    turn_b = [
        (i, e) for i, e in results["b"] if e["type"] != "data-status" or e["data"]["status"] == "running"
    ]
    assert turn_a == turn_b
    deltas = "".join(e["delta"] for _, e in turn_a if e["type"] == "text-delta")
    assert deltas == "one two three four five six"

    # Reconnect after the third event: exactly the rest comes again, with the same ids.
    cut = next(i for i, (_, e) in enumerate(turn_a) if e["type"] == "text-delta")
    replay = await admin_api.events(chat_id, lambda e: e["type"] == "finish", last_event_id=turn_a[cut][0])
    assert replay == turn_a[cut + 1 :]


async def test_a_new_watcher_of_a_running_turn_gets_it_from_its_start(
    admin_api: Api, fake_model: FakeOpenAI, agent: RunningAgent
) -> None:
    chat_id = await new_chat(admin_api, agent.url)
    hold = threading.Event()
    fake_model.add(Reply(text="late but complete", hold=hold))

    def released_once_watching(event: dict[str, Any]) -> bool:
        hold.set()  # the watcher is subscribed while the turn still runs: now let it finish
        return is_idle(event)

    try:
        await admin_api.post(f"/chats/{chat_id}/messages", {"content": "go"}, expect=202)
        await wait_until(lambda: len(fake_model.requests) == 1, message="the model to be asked")
        events = await admin_api.events(chat_id, released_once_watching)
    finally:
        hold.set()
    kinds = [e["type"] for _, e in events]
    assert kinds[0] == "data-status" and kinds[1] == "data-message" and kinds[2] == "start"
    assert "".join(e["delta"] for _, e in events if e["type"] == "text-delta") == "late but complete"


async def test_messages_sent_during_a_turn_are_queued_and_interrupt_stops_the_turn(
    admin_api: Api, fake_model: FakeOpenAI, agent: RunningAgent
) -> None:
    chat_id = await new_chat(admin_api, agent.url)
    hold = threading.Event()
    fake_model.add(Reply(text="never finished", hold=hold), Reply(text="answer to the second"))
    try:
        first = await admin_api.post(f"/chats/{chat_id}/messages", {"content": "first"}, expect=202)
        assert first["queued"] is False
        await wait_until(lambda: len(fake_model.requests) == 1, message="the first turn to reach the model")
        second = await admin_api.post(f"/chats/{chat_id}/messages", {"content": "second"}, expect=202)
        assert second["queued"] is True
        chat = await admin_api.get(f"/chats/{chat_id}")
        assert chat["running"] and chat["status"] == "running"
        assert [q["content"] for q in chat["queued"]] == ["second"]
        assert (await admin_api.post(f"/chats/{chat_id}/interrupt"))["interrupted"] is True
        await admin_api.wait_status(chat_id, "idle")
    finally:
        hold.set()
    messages = await admin_api.messages(chat_id)
    assert [(m["role"], m["parts"][0].get("text")) for m in messages] == [
        ("user", "first"),
        ("assistant", "Stopped by the user."),  # the interrupted mark
        ("user", "second"),
        ("assistant", "answer to the second"),
    ]
    # The second turn's model request had both user messages in order.
    users = [m["content"] for m in fake_model.requests[1]["messages"] if m["role"] == "user"]
    assert users == ["first", "second"]
    assert (await admin_api.post(f"/chats/{chat_id}/interrupt"))["interrupted"] is False


async def test_interrupt_true_stops_the_running_turn_and_runs_the_new_message(
    admin_api: Api, fake_model: FakeOpenAI, agent: RunningAgent
) -> None:
    chat_id = await new_chat(admin_api, agent.url)
    hold = threading.Event()
    fake_model.add(Reply(text="stuck", hold=hold), Reply(text="fresh answer"))
    try:
        await admin_api.post(f"/chats/{chat_id}/messages", {"content": "slow one"}, expect=202)
        await wait_until(lambda: len(fake_model.requests) == 1, message="the first turn to reach the model")
        collected: list[tuple[str, dict[str, Any]]] = []
        watching = anyio.Event()

        def fresh_answer_finished(event: dict[str, Any]) -> bool:
            watching.set()  # the first event arrived: the watcher is subscribed
            return event["type"] == "finish" and event["messageMetadata"]["finish_reason"] == "stop"

        async def watch() -> None:
            collected.extend(await admin_api.events(chat_id, fresh_answer_finished))

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            with anyio.fail_after(30):
                await watching.wait()  # interrupt only once the watcher sees the running turn
            await admin_api.post(
                f"/chats/{chat_id}/messages", {"content": "now this", "interrupt": True}, expect=202
            )
    finally:
        hold.set()
    kinds = [e["type"] for _, e in collected]
    assert "abort" in kinds
    statuses = [e["data"]["status"] for _, e in collected if e["type"] == "data-status"]
    assert "interrupted" in statuses and statuses[-1] == "running"
    await admin_api.wait_status(chat_id, "idle")
    messages = await admin_api.messages(chat_id)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[1]["parts"][0]["type"] == "interrupted"
    assert messages[-1]["parts"] == [{"type": "text", "text": "fresh answer"}]
