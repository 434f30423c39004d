"""Steering a chat over the real stack: switching its model for the next turn, editing the last
user message and running again, and long chats whose oldest tool results are shortened for the
model while the stored history stays whole."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chat.conftest import MODEL, Api, ChatServer
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_retry import sent_to_model
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.support.agent import RunningAgent

pytestmark = pytest.mark.anyio

OTHER = "openai:other-model"


@pytest.fixture
def agent(start_agent: Callable[..., RunningAgent]) -> RunningAgent:
    return start_agent({})


async def run_turn(api: Api, chat_id: str, content: str) -> None:
    await api.post(f"/chats/{chat_id}/messages", {"content": content}, expect=202)
    await api.events(chat_id, turn_ended())


async def test_switching_the_model_applies_to_the_next_turn_with_the_history_as_it_is(
    start_chat_server: Callable[..., ChatServer], fake_model: FakeOpenAI, agent: RunningAgent
) -> None:
    server = start_chat_server(env={"WORKDOCK_MODELS": f"{MODEL},{OTHER}"})
    api = Api(server.url, server.admin_token)
    try:
        chat_id = await new_chat(api, agent.url)
        fake_model.add(Reply(text="from the first model"))
        await run_turn(api, chat_id, "one")
        assert fake_model.requests[-1]["model"] == "fake-model"

        chat = await api.request("PATCH", f"/chats/{chat_id}", json={"model": OTHER})
        assert chat["model"] == OTHER
        fake_model.add(Reply(text="from the second model"))
        await run_turn(api, chat_id, "two")
        assert fake_model.requests[-1]["model"] == "other-model"
        # The first model's answer is sent to the second as it is.
        assert sent_to_model(fake_model) == [
            ("user", "one"),
            ("assistant", "from the first model"),
            ("user", "two"),
        ]
        answers = [m for m in await api.messages(chat_id) if m["role"] == "assistant"]
        assert [m["model"] for m in answers] == [MODEL, OTHER]

        refused = await api.request("PATCH", f"/chats/{chat_id}", 400, json={"model": "openai:nope"})
        assert refused["message"] == "unknown model" and OTHER in refused["detail"]
        assert (await api.request("PATCH", f"/chats/{chat_id}", json={"model": None}))["model"] == MODEL
    finally:
        await api.aclose()


async def test_editing_the_last_message_runs_the_turn_again_from_the_edit(
    admin_api: Api, fake_model: FakeOpenAI, agent: RunningAgent
) -> None:
    chat_id = await new_chat(admin_api, agent.url)
    await run_turn(admin_api, chat_id, "first question")
    fake_model.add(Reply(text="an answer to a typo"))
    await run_turn(admin_api, chat_id, "secnod questoin")
    before = await admin_api.messages(chat_id)

    fake_model.add(Reply(text="an answer to the edit"))
    answer = await admin_api.post(f"/chats/{chat_id}/retry", {"content": "second question"}, expect=202)
    assert answer["message_id"] == before[2]["id"]
    seen = await admin_api.events(chat_id, turn_ended())
    [superseded] = [e for _, e in seen if e["type"] == "data-superseded"]
    assert superseded["data"]["message_ids"] == [before[2]["id"], before[3]["id"]]
    after = await admin_api.messages(chat_id)
    shown = [(m["role"], m["parts"][0]["text"], m.get("superseded", False)) for m in after]
    # The edited message and its answer are kept, superseded; the edit is a new user message.
    assert shown == [
        ("user", "first question", False),
        ("assistant", "done", False),
        ("user", "secnod questoin", True),
        ("assistant", "an answer to a typo", True),
        ("user", "second question", False),
        ("assistant", "an answer to the edit", False),
    ]
    assert sent_to_model(fake_model) == [
        ("user", "first question"),
        ("assistant", "done"),
        ("user", "second question"),
    ]
    # A retry after the edit runs the edited message again.
    fake_model.add(Reply(text="again"))
    assert (await admin_api.post(f"/chats/{chat_id}/retry", expect=202))["message_id"] == after[4]["id"]
    await admin_api.events(chat_id, turn_ended())
    assert sent_to_model(fake_model)[-1] == ("user", "second question")

    too_long = "x" * (1024 * 1024 + 1)  # one byte over the default limit
    answer = await admin_api.request("POST", f"/chats/{chat_id}/retry", 413, json={"content": too_long})
    assert answer["message"] == "message too long"


async def test_a_long_chat_shortens_the_oldest_tool_results_for_the_model_only(
    start_chat_server: Callable[..., ChatServer],
    fake_model: FakeOpenAI,
    agent: RunningAgent,
    workspace_dir: Path,
) -> None:
    # A window of 10,000 tokens (about 40,000 bytes): a 32,000-byte result, a 4,000-byte one and
    # the built-ins' schemas pass 75 % of it; shortening the first brings them under 50 %.
    server = start_chat_server(env={"WORKDOCK_MODELS": f"{MODEL}@10000"})
    api = Api(server.url, server.admin_token)
    try:
        for name, lines in (("a.txt", 320), ("b.txt", 40)):
            text = "".join(f"{name} line {i:04d} " + "y" * 80 + "\n" for i in range(lines))
            (workspace_dir / name).write_text(text)
        chat_id = await new_chat(api, agent.url)
        fake_model.add(Reply(calls=[Call("read_file", {"path": "a.txt"})]), Reply(text="read a"))
        await run_turn(api, chat_id, "read a")
        # Within the turn that made it, a result is never shortened.
        assert "a.txt line 0319" in fake_model.tool_messages(-1)[0]["content"]
        fake_model.add(Reply(calls=[Call("read_file", {"path": "b.txt"})]), Reply(text="read b"))
        await run_turn(api, chat_id, "read b")
        stored = await api.messages(chat_id)
        fake_model.add(Reply(text="ok"))
        await run_turn(api, chat_id, "what now?")

        first, second = fake_model.tool_messages(-1)
        # The oldest is shortened with a note; the newer one fits once it is.
        assert "a.txt line 0000" in first["content"] and "a.txt line 0319" not in first["content"]
        assert "shortened for the model as the chat nears its context window" in first["content"]
        assert "b.txt line 0039" in second["content"]
        # The stored history is untouched.
        assert [m for m in await api.messages(chat_id)][: len(stored)] == stored
        [result_a] = [m for m in stored if m["role"] == "tool"][:1]
        assert "a.txt line 0319" in result_a["parts"][0]["content"][0]["text"]
    finally:
        await api.aclose()
