"""The SSE stream: ids, Last-Event-ID replay, several watchers, queueing and interrupts."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import FakeOpenAI, Reply
from tests.chat.test_turn_e2e import is_idle, new_chat
from tests.conftest import wait_until
from tests.support.agent import RunningAgent
from workdock.chat.services import Services
from workdock.chat.store.models import Chat

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


async def test_a_watcher_that_read_the_chat_just_before_its_turn_began_gets_the_whole_turn(
    admin_api: Api, fake_model: FakeOpenAI, agent: RunningAgent, chat_server: ChatServer
) -> None:
    """The stream reads the chat, then where to begin; a turn starting in between is not skipped."""
    chat_id = await new_chat(admin_api, agent.url)
    hold = threading.Event()
    fake_model.add(Reply(text="begun in between", hold=hold))

    async def read_chat(svc: Services) -> Chat | None:
        return await svc.store.get_chat(chat_id)

    async def watch_from_start_point(svc: Services) -> tuple[bool, list[dict[str, Any]]]:
        assert before is not None
        start, snapshot = await svc.events.start_point(before, None, svc.scheduler.is_running(before))
        hold.set()
        seen: list[dict[str, Any]] = []
        async with contextlib.aclosing(svc.events.watch(chat_id, start)) as events:
            async for event in events:
                seen.append(orjson.loads(event.data))
                if is_idle(seen[-1]):
                    break
        return snapshot, seen

    try:
        before = await chat_server.call(read_chat)  # idle: as the stream request found it
        await admin_api.post(f"/chats/{chat_id}/messages", {"content": "go"}, expect=202)
        await wait_until(
            lambda: len(fake_model.requests) == 1, timeout=30, message="the turn to be under way"
        )
        with anyio.fail_after(30):
            snapshot, seen = await chat_server.call(watch_from_start_point)
    finally:
        hold.set()
    kinds = [e["type"] for e in seen]
    assert not snapshot and kinds[:3] == ["data-status", "data-message", "start"]
    assert "".join(e["delta"] for e in seen if e["type"] == "text-delta") == "begun in between"


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


async def test_an_id_the_chat_does_not_have_gets_the_whole_current_turn(
    admin_api: Api, fake_model: FakeOpenAI, agent: RunningAgent
) -> None:
    chat_id = await new_chat(admin_api, agent.url)
    hold = threading.Event()
    fake_model.add(Reply(text="the whole turn", hold=hold))
    try:
        await admin_api.post(f"/chats/{chat_id}/messages", {"content": "go"}, expect=202)
        await wait_until(lambda: len(fake_model.requests) == 1, message="the model to be asked")
        # A new watcher gets the running turn from its start; so does one with an id of the old
        # `<boot>-<seq>` form, one beyond the chat's numbers, and one that is not a number at all.
        fresh = await admin_api.events(chat_id, lambda e: e["type"] == "start")
        for stale in ("3fa2c1-4", "999999999999", "x"):
            again = await admin_api.events(chat_id, lambda e: e["type"] == "start", last_event_id=stale)
            assert again == fresh
        assert [e["type"] for _, e in fresh] == ["data-status", "data-message", "start"]
        assert fresh[0][1]["data"]["status"] == "running"
    finally:
        hold.set()
    await admin_api.wait_status(chat_id, "idle")


async def test_last_event_id_resumes_after_a_restart(
    start_chat_server: Callable[..., ChatServer],
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    tmp_path: Path,
) -> None:
    """The events are stored, so an id from before a restart resumes exactly after itself."""
    agent = start_agent({})
    data_dir = tmp_path / "data"
    server = start_chat_server(subprocess_mode=True, data_dir=data_dir)
    api = Api(server.url, server.admin_token)
    try:
        chat_id = await new_chat(api, agent.url)
        fake_model.add(Reply(text="one two three four"))
        seen: list[tuple[str, dict[str, Any]]] = []
        subscribed: list[bool] = []

        def until(event: dict[str, Any]) -> bool:
            subscribed.append(True)
            return is_idle(event) and any(e["type"] == "start" for _, e in seen)

        async def watch() -> None:
            async for item in _stream(api, chat_id):
                seen.append(item)
                if until(item[1]):
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await wait_until(lambda: subscribed, message="the watcher to subscribe")
            await api.post(f"/chats/{chat_id}/messages", {"content": "count"}, expect=202)
    finally:
        await api.aclose()
    server.stop()
    server = start_chat_server(subprocess_mode=True, data_dir=data_dir)
    api = Api(server.url, server.admin_token)
    try:
        cut = next(i for i, (_, e) in enumerate(seen) if e["type"] == "text-delta")
        rest = await api.events(chat_id, is_idle, last_event_id=seen[cut][0])
        assert rest == seen[cut + 1 :]
    finally:
        await api.aclose()


async def _stream(api: Api, chat_id: str) -> Any:
    import json

    async with api.http.stream("GET", f"/api/v0/chats/{chat_id}/stream") as response:
        event_id, data = "", []
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                yield event_id, json.loads("\n".join(data))
                data = []
