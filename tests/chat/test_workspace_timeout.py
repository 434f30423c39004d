"""A workspace tool call waits as long as its server's own `timeout` says: the chat sends no
timeout of its own (its setting is for admin servers), up to the agent's ceiling of 600 s."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.support.agent import RunningAgent, fixture_server

pytestmark = pytest.mark.anyio


async def test_the_servers_own_timeout_wins_over_the_chats(
    start_chat_server: Callable[..., ChatServer],
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
) -> None:
    # The chat's own call timeout is far below one server's and far above the other's.
    server = start_chat_server(tool_timeout=1.0)
    quick = {**fixture_server("slow_tool.py"), "timeout": 1500}
    patient = {**fixture_server("slow_tool.py"), "timeout": 120000.0}  # written as a float, too
    agent = start_agent({"quick": quick, "patient": patient})
    agent.wait_state("quick", "ready")
    agent.wait_state("patient", "ready")
    api = Api(server.url, server.admin_token)
    try:
        chat_id = await new_chat(api, agent.url)
        fake_model.add(
            Reply(calls=[Call("quick__sleep", {"seconds": 30}), Call("patient__sleep", {"seconds": 3})]),
            Reply(text="done"),
        )
        await api.post(f"/chats/{chat_id}/messages", {"content": "sleep"}, expect=202)
        await api.events(chat_id, turn_ended(), timeout=60)
        results = {part["tool_name"]: part for part in (await api.messages(chat_id))[2]["parts"]}
    finally:
        await api.aclose()
    assert results["patient__sleep"]["is_error"] is False
    assert text(results["patient__sleep"]) == "slept 3 seconds"
    assert results["quick__sleep"]["is_error"] is True
    assert "tool 'sleep' on server 'quick' did not answer within 1.5 s" in text(results["quick__sleep"])


def text(part: dict[str, Any]) -> str:
    return "\n".join(c.get("text", "") for c in part["content"])
