"""End to end: fake model → chat server → real agent → real MCP server, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.chat.conftest import Api
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.support.agent import TOKEN, RunningAgent

pytestmark = pytest.mark.anyio


def is_idle(event: dict[str, Any]) -> bool:
    return event["type"] == "data-status" and event["data"]["status"] in ("idle", "error", "interrupted")


def turn_ended() -> Callable[[dict[str, Any]], bool]:
    """An ``until`` for ``Api.events`` that is true once a turn has started and then settled.

    A stream opened right after posting a message may begin with the status snapshot of the chat
    as it was before the turn started ("idle"); stopping there would miss the whole turn.
    """
    started = False

    def until(event: dict[str, Any]) -> bool:
        nonlocal started
        started = started or event["type"] == "start"
        return started and is_idle(event)

    return until


async def new_chat(api: Api, agent_url: str, token: str = TOKEN, **chat: Any) -> str:
    workspace = await api.post(
        "/workspaces", {"name": "ws", "agent_url": agent_url, "agent_token": token}, expect=201
    )
    created = await api.post("/chats", {"workspace_id": workspace["id"], **chat}, expect=201)
    return created["id"]


async def test_tools_of_a_real_agent_and_a_builtin_reach_the_model(
    admin_api: Api,
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    everything_stdio: dict[str, Any],
    workspace_dir: Path,
) -> None:
    agent = start_agent({"everything": everything_stdio})
    agent.wait_state("everything", "ready")
    (workspace_dir / "notes.txt").write_text("hello from the workspace\n")
    chat_id = await new_chat(admin_api, agent.url)
    # Step 1: two parallel calls (one MCP tool through the agent, one built-in); step 2: the answer.
    fake_model.add(
        Reply(
            text="Let me look.",
            calls=[Call("everything__echo", {"message": "ping"}), Call("read_file", {"path": "notes.txt"})],
        ),
        Reply(text="Both tools answered."),
    )

    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "check the tools"}, expect=202)
    events = await admin_api.events(chat_id, turn_ended())
    kinds = [e["type"] for _, e in events]

    # The model saw both tools offered, then both results.
    assert {"read_file", "everything__echo", "execute"} <= set(fake_model.tool_names(0))
    results = {m["tool_call_id"]: m["content"] for m in fake_model.tool_messages(1)}
    assert len(results) == 2
    joined = "\n".join(str(c) for c in results.values())
    assert "Echo: ping" in joined
    assert "hello from the workspace" in joined

    # The stream used the UI chunk vocabulary, in order.
    for kind in (
        "start",
        "start-step",
        "text-start",
        "text-delta",
        "tool-input-start",
        "tool-input-delta",
        "tool-input-available",
        "tool-output-available",
        "data-message",
        "finish-step",
        "finish",
    ):
        assert kind in kinds, kind
    assert kinds.index("start") < kinds.index("start-step") < kinds.index("tool-output-available")
    assert kinds.count("start-step") == 2 and kinds.count("finish-step") == 2
    announced = {e["toolName"]: e["input"] for _, e in events if e["type"] == "tool-input-available"}
    assert announced == {"everything__echo": {"message": "ping"}, "read_file": {"path": "notes.txt"}}
    ids = [event_id for event_id, _ in events]
    assert all(ids) and len(set(ids)) == len(ids)

    # The history is stored: user, assistant with two calls, their results, the answer.
    messages = await admin_api.messages(chat_id)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    calls = [p for p in messages[1]["parts"] if p["type"] == "tool-call"]
    assert {(c["tool_name"], c["source"], c["server"]) for c in calls} == {
        ("everything__echo", "workspace", "everything"),
        ("read_file", "builtin", None),
    }
    assert messages[1]["model"] == "openai:fake-model"
    assert messages[1]["usage"] == {"input_tokens": 10, "output_tokens": 5}
    tool_results = messages[2]["parts"]
    assert {r["tool_call_id"] for r in tool_results} == {c["tool_call_id"] for c in calls}
    assert not any(r["is_error"] for r in tool_results)
    assert all(isinstance(r["duration_ms"], int) for r in tool_results)
    assert messages[3]["parts"] == [{"type": "text", "text": "Both tools answered."}]
    chat = await admin_api.get(f"/chats/{chat_id}")
    assert chat["status"] == "idle" and chat["title"] == "check the tools"


async def test_without_a_model_chats_work_and_a_message_says_how_to_configure_one(
    start_chat_server: Callable[..., Any], start_agent: Callable[..., RunningAgent]
) -> None:
    server = start_chat_server(env={"WORKDOCK_MODELS": ""})
    api = Api(server.url, server.admin_token)
    try:
        agent = start_agent({})
        chat_id = await new_chat(api, agent.url)
        assert (await api.get("/models"))["models"] == []
        tools = await api.get(f"/chats/{chat_id}/tools")
        assert "read_file" in {t["name"] for t in tools["tools"]}
        await api.post(f"/chats/{chat_id}/messages", {"content": "hello?"}, expect=202)
        events = await api.events(chat_id, turn_ended())
        [error] = [e for _, e in events if e["type"] == "error"]
        assert "WORKDOCK_MODELS" in error["errorText"]
        chat = await api.get(f"/chats/{chat_id}")
        assert chat["status"] == "error"
        messages = await api.messages(chat_id)
        assert messages[-1]["parts"][0]["type"] == "error"
        assert "WORKDOCK_MODELS" in messages[-1]["parts"][0]["text"]
    finally:
        await api.aclose()
