"""Three replicas on one PostgreSQL: a message posted to any of them runs exactly once, twenty chats
posted round robin all complete once each, every watcher sees the same events with the same ids,
and an interrupt through a replica that does not run the turn stops it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import turn_ended
from tests.replicas.conftest import Service, new_chat, new_workspace
from tests.support.agent import RunningAgent
from tests.support.helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def last_user_message(request: dict[str, Any]) -> str:
    return next(m["content"] for m in reversed(request["messages"]) if m["role"] == "user")


async def test_a_message_posted_to_one_replica_runs_exactly_once(
    start_service: Callable[..., Service], fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent]
) -> None:
    service = start_service(3)
    a, b, c = service.apis
    agent = start_agent({})
    chat_id = await new_chat(a, await new_workspace(a, agent.url))
    fake_model.add(Reply(text="one answer"))

    async with anyio.create_task_group() as tg:
        seen: list[list[tuple[str, dict[str, Any]]]] = []

        async def watch() -> None:
            seen.append(await c.events(chat_id, turn_ended()))

        tg.start_soon(watch)
        await b.post(f"/chats/{chat_id}/messages", {"content": "hello"}, expect=202)

    assert [e["type"] for _, e in seen[0]][-1] == "data-status"
    # Every replica heard of the message; one ran it.
    await b.wait_status(chat_id, "idle")
    assert [last_user_message(r) for r in fake_model.requests] == ["hello"]
    messages = await a.messages(chat_id)
    assert [(m["role"], m["parts"][0].get("text")) for m in messages] == [
        ("user", "hello"),
        ("assistant", "one answer"),
    ]
    assert await service.holder(chat_id) is None  # given back once its queue was empty


async def test_twenty_chats_posted_round_robin_all_complete_exactly_once(
    start_service: Callable[..., Service], fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent]
) -> None:
    service = start_service(3)
    agent = start_agent({})
    workspace_id = await new_workspace(service.apis[0], agent.url)
    chats = [await new_chat(service.apis[i % 3], workspace_id) for i in range(20)]
    fake_model.default = Reply(text="done")
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for i, chat_id in enumerate(chats):
                body = {"content": f"chat {i}"}
                tg.start_soon(service.apis[i % 3].post, f"/chats/{chat_id}/messages", body, 202)

    for i, chat_id in enumerate(chats):
        await service.apis[(i + 1) % 3].wait_status(chat_id, "idle", timeout=60)
    asked = sorted(last_user_message(r) for r in fake_model.requests)
    assert asked == sorted(f"chat {i}" for i in range(20))  # each once, none twice
    for i, chat_id in enumerate(chats):
        messages = await service.apis[(i + 2) % 3].messages(chat_id)
        assert [(m["role"], m["parts"][0].get("text")) for m in messages] == [
            ("user", f"chat {i}"),
            ("assistant", "done"),
        ]


async def test_watchers_on_every_replica_see_the_same_events_with_the_same_ids(
    start_service: Callable[..., Service], fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent]
) -> None:
    service = start_service(3)
    agent = start_agent({})
    chat_id = await new_chat(service.apis[0], await new_workspace(service.apis[0], agent.url))
    fake_model.add(
        Reply(text="let me write it down", calls=[Call("write_file", {"path": "a.txt", "content": "x"})]),
        Reply(text="one two three four five six seven eight nine ten"),
    )
    seen: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    subscribed: set[int] = set()

    async def watch(index: int) -> None:
        def until(event: dict[str, Any]) -> bool:
            subscribed.add(index)  # the first event (the idle snapshot) means it is subscribed
            return event["type"] == "finish"

        seen[index] = await service.apis[index].events(chat_id, until)

    async with anyio.create_task_group() as tg:
        for index in range(3):
            tg.start_soon(watch, index)
        await wait_until(lambda: subscribed == {0, 1, 2}, message="three watchers to subscribe")
        await service.apis[1].post(f"/chats/{chat_id}/messages", {"content": "write"}, expect=202)

    assert seen[0] == seen[1] == seen[2]
    ids = [int(i) for i, _ in seen[0][1:]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    kinds = [e["type"] for _, e in seen[0]]
    assert kinds.count("tool-input-available") == 1 and kinds.count("data-message") == 4
    deltas = "".join(e["delta"] for _, e in seen[0] if e["type"] == "text-delta")
    assert deltas.endswith("one two three four five six seven eight nine ten")


async def test_an_interrupt_through_a_replica_that_does_not_run_the_turn_stops_it(
    start_service: Callable[..., Service], fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent]
) -> None:
    service = start_service(3)
    agent = start_agent({})
    chat_id = await new_chat(service.apis[0], await new_workspace(service.apis[0], agent.url))
    hold = threading.Event()
    fake_model.add(Reply(text="this never ends", hold=hold), Reply(text="the next one"))
    try:
        await service.apis[0].post(f"/chats/{chat_id}/messages", {"content": "long"}, expect=202)
        await wait_until(lambda: fake_model.requests, timeout=30, message="the turn to reach the model")
        holder = await service.wait_holder(chat_id)
        other = next(api for api in service.apis if not api.base_url.endswith(holder))
        await other.post(f"/chats/{chat_id}/messages", {"content": "queued behind"}, expect=202)
        asked = time.monotonic()
        assert (await other.post(f"/chats/{chat_id}/interrupt"))["interrupted"] is True
        # The interrupt is a notification to the holder (no polling anywhere would stop the turn).
        await other.wait_status(chat_id, "idle", timeout=30)
        stopped_after = time.monotonic() - asked
    finally:
        hold.set()
    messages = await other.messages(chat_id)
    assert [(m["role"], m["parts"][0].get("text")) for m in messages] == [
        ("user", "long"),
        ("assistant", "Stopped by the user."),
        ("user", "queued behind"),
        ("assistant", "the next one"),
    ]
    print(f"interrupt through another replica: the queue had run {stopped_after:.2f} s after it")
