"""POST /chats/{id}/retry over real HTTP: the last turn runs again from its user message, the turn
it replaces stays in the history as superseded and is never sent to the model again; refusals."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import Call, Fail, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.conftest import wait_until
from tests.support.agent import RunningAgent

pytestmark = pytest.mark.anyio


@pytest.fixture
def agent(start_agent: Callable[..., RunningAgent]) -> RunningAgent:
    return start_agent({})


def sent_to_model(fake: FakeOpenAI, index: int = -1) -> list[tuple[str, str]]:
    """(role, text or tool names) of every message one model request carried."""
    out = []
    for message in fake.requests[index]["messages"]:
        calls = [c["function"]["name"] for c in message.get("tool_calls") or []]
        out.append((message["role"], ",".join(calls) if calls else str(message.get("content") or "")))
    return out


async def run_turn(api: Api, chat_id: str, content: str) -> None:
    await api.post(f"/chats/{chat_id}/messages", {"content": content}, expect=202)
    await api.events(chat_id, turn_ended())


async def test_retry_reruns_a_failed_turn_and_the_model_no_longer_sees_it(
    admin_api: Api, fake_model: FakeOpenAI, agent: RunningAgent, workspace_dir: Path
) -> None:
    (workspace_dir / "notes.txt").write_text("the notes\n")
    chat_id = await new_chat(admin_api, agent.url)
    await run_turn(admin_api, chat_id, "warm up")  # an earlier turn stays as it is
    fake_model.add(
        Reply(text="Reading.", calls=[Call("read_file", {"path": "notes.txt"})]),
        Fail(400, "the provider is overloaded"),
    )
    await run_turn(admin_api, chat_id, "summarise the notes")
    chat = await admin_api.get(f"/chats/{chat_id}")
    assert chat["status"] == "error"
    before = await admin_api.messages(chat_id)
    assert [m["role"] for m in before] == ["user", "assistant", "user", "assistant", "tool", "assistant"]
    assert "the provider is overloaded" in before[-1]["parts"][0]["text"]
    question = before[2]

    fake_model.add(Reply(text="The notes say hello."))
    answer = await admin_api.post(f"/chats/{chat_id}/retry", expect=202)
    assert answer["message_id"] == question["id"]
    seen = await admin_api.events(chat_id, turn_ended())
    [superseded] = [e for _, e in seen if e["type"] == "data-superseded"]
    assert superseded["data"]["message_ids"] == [m["id"] for m in before[3:]]

    after = await admin_api.messages(chat_id)
    assert (await admin_api.get(f"/chats/{chat_id}"))["status"] == "idle"
    # Nothing removed: the replaced turn is kept, marked; the retry's answer follows it.
    assert [m["id"] for m in after[: len(before)]] == [m["id"] for m in before]
    assert [m.get("superseded", False) for m in after] == [False] * 3 + [True] * 3 + [False]
    assert after[-1]["parts"] == [{"type": "text", "text": "The notes say hello."}]
    # The model was sent the earlier turn and the question again, not the replaced call and result.
    assert sent_to_model(fake_model) == [
        ("user", "warm up"),
        ("assistant", "done"),
        ("user", "summarise the notes"),
    ]

    # Retrying again replaces the retry's answer too; still one question for the model.
    fake_model.add(Reply(text="Hello, say the notes."))
    await admin_api.post(f"/chats/{chat_id}/retry", {}, expect=202)
    await admin_api.events(chat_id, turn_ended())
    again = await admin_api.messages(chat_id)
    assert [m.get("superseded", False) for m in again] == [False] * 3 + [True] * 4 + [False]
    assert sent_to_model(fake_model)[-1] == ("user", "summarise the notes")
    assert len(sent_to_model(fake_model)) == 3


async def test_retry_is_refused_clearly_while_a_turn_runs_and_works_with_the_queue(
    admin_api: Api, fake_model: FakeOpenAI, agent: RunningAgent
) -> None:
    chat_id = await new_chat(admin_api, agent.url)
    empty = await admin_api.post(f"/chats/{chat_id}/retry", expect=409)
    assert empty == {"message": "nothing to retry", "detail": "the chat has no message yet"}

    hold = threading.Event()
    fake_model.add(Reply(text="slow answer", hold=hold))
    try:
        await admin_api.post(f"/chats/{chat_id}/messages", {"content": "first"}, expect=202)
        await wait_until(lambda: len(fake_model.requests) == 1, timeout=30, message="the turn to start")
        refused = await admin_api.post(f"/chats/{chat_id}/retry", expect=409)
        assert refused["message"] == "a turn is running" and "stop it first" in refused["detail"]
        # A message sent meanwhile is queued; a retry is refused while it waits, too.
        await admin_api.post(f"/chats/{chat_id}/messages", {"content": "second"}, expect=202)
        assert len((await admin_api.get(f"/chats/{chat_id}"))["queued"]) == 1
        await admin_api.post(f"/chats/{chat_id}/retry", expect=409)
    finally:
        hold.set()
    await admin_api.wait_status(chat_id, "idle")
    assert [m["role"] for m in await admin_api.messages(chat_id)] == ["user", "assistant"] * 2

    # The retry's own turn takes the queue like any turn: a message sent while it runs waits for it.
    hold = threading.Event()
    fake_model.add(Reply(text="second, again", hold=hold), Reply(text="third answer"))
    try:
        await admin_api.post(f"/chats/{chat_id}/retry", expect=202)
        await wait_until(lambda: len(fake_model.requests) == 3, timeout=30, message="the retry to start")
        queued = await admin_api.post(f"/chats/{chat_id}/messages", {"content": "third"}, expect=202)
        assert queued["queued"] is True
    finally:
        hold.set()
    await admin_api.wait_status(chat_id, "idle")
    history = await admin_api.messages(chat_id)
    shown = [(m["role"], m["parts"][0].get("text"), m.get("superseded", False)) for m in history]
    assert shown == [
        ("user", "first", False),
        ("assistant", "slow answer", False),
        ("user", "second", False),
        ("assistant", "done", True),
        ("assistant", "second, again", False),
        ("user", "third", False),
        ("assistant", "third answer", False),
    ]
    assert [r for r, _ in sent_to_model(fake_model)] == ["user", "assistant"] * 2 + ["user"]


async def test_retry_after_an_interrupt_and_bad_requests(
    admin_api: Api, chat_server: ChatServer, fake_model: FakeOpenAI, agent: RunningAgent
) -> None:
    chat_id = await new_chat(admin_api, agent.url)
    hold = threading.Event()
    fake_model.add(Reply(text="never finished", hold=hold))
    try:
        await admin_api.post(f"/chats/{chat_id}/messages", {"content": "go"}, expect=202)
        await wait_until(lambda: len(fake_model.requests) == 1, timeout=30, message="the turn to start")
        assert (await admin_api.post(f"/chats/{chat_id}/interrupt"))["interrupted"]
    finally:
        hold.set()
    history = await admin_api.messages(chat_id)
    assert history[-1]["parts"] == [{"type": "interrupted", "reason": "user", "text": "Stopped by the user."}]
    assert (await admin_api.get(f"/chats/{chat_id}"))["status"] == "interrupted"

    for bad in ({"text": "edited"}, {"content": ""}, {"content": 5}):
        response = await admin_api.http.post(f"/api/v0/chats/{chat_id}/retry", json=bad)
        assert response.status_code == 400 and set(response.json()) == {"message", "detail"}, bad
    response = await admin_api.http.post(
        f"/api/v0/chats/{chat_id}/retry", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    await admin_api.post("/chats/nope/retry", expect=404)
    bob = await admin_api.post("/users", {"name": "bob"}, expect=201)
    token = (await admin_api.post(f"/users/{bob['id']}/tokens", {"name": "t"}, expect=201))["token"]
    bob_api = Api(chat_server.url, token)
    try:
        assert (await bob_api.post(f"/chats/{chat_id}/retry", expect=404))["message"] == "no such chat"
    finally:
        await bob_api.aclose()

    fake_model.add(Reply(text="finished this time"))
    await admin_api.post(f"/chats/{chat_id}/retry", expect=202)
    await admin_api.events(chat_id, turn_ended())
    after = await admin_api.messages(chat_id)
    assert [(m["role"], m.get("superseded", False)) for m in after] == [
        ("user", False),
        ("assistant", True),  # the interrupted mark
        ("assistant", False),
    ]
    assert after[-1]["parts"][0]["text"] == "finished this time"


async def test_a_chat_read_while_its_queue_runs_is_never_idle_with_a_message_unanswered(
    admin_api: Api, fake_model: FakeOpenAI, agent: RunningAgent
) -> None:
    """GET /chats/{id} reads the queue and the chat's status: a turn starting between the two
    reads must not show the chat idle with nothing queued while its message is unanswered (what
    clients wait for before reading the history)."""
    chat_id = await new_chat(admin_api, agent.url)
    queued = 40
    hold = threading.Event()
    fake_model.add(
        Reply(text="answer 0", hold=hold), *[Reply(text=f"answer {i}") for i in range(1, queued + 1)]
    )
    try:
        await admin_api.post(f"/chats/{chat_id}/messages", {"content": "message 0"}, expect=202)
        await wait_until(lambda: len(fake_model.requests) == 1, timeout=30, message="the first turn to start")
        for i in range(1, queued + 1):
            await admin_api.post(f"/chats/{chat_id}/messages", {"content": f"message {i}"}, expect=202)
    finally:
        hold.set()
    # Several readers as fast as they can while the queue runs turn after turn: whenever one is
    # told it is over, it must be.
    wrong: list[int] = []

    async def read_until_over() -> None:
        while True:
            chat = await admin_api.get(f"/chats/{chat_id}")
            if chat["status"] == "idle" and not chat["running"] and not chat["queued"]:
                answered = await admin_api.messages(chat_id)
                if len(answered) != 2 * (queued + 1):
                    wrong.append(len(answered))
                return

    with anyio.fail_after(60):
        async with anyio.create_task_group() as readers:
            for _ in range(4):
                readers.start_soon(read_until_over)
    assert wrong == [], f"told the chat was idle with {wrong} of {2 * (queued + 1)} messages stored"
