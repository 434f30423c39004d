"""A model that never stops calling tools: the turn ends after 50 steps, stored, and says why."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.chat.conftest import Api
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.support.agent import RunningAgent
from workdock.chat.turn import MAX_STEPS

pytestmark = pytest.mark.anyio


async def test_a_turn_stops_after_50_steps_stores_them_and_says_so(
    admin_api: Api, fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent]
) -> None:
    assert MAX_STEPS == 50  # spec/chat.md 4.5
    agent = start_agent({})
    chat_id = await new_chat(admin_api, agent.url)
    fake_model.default = Reply(calls=[Call("process_list", {})])  # every answer calls a tool again

    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "loop forever"}, expect=202)
    events = await admin_api.events(chat_id, turn_ended(), timeout=120)

    assert len(fake_model.requests) == 50
    payloads = [e for _, e in events]
    kinds = [e["type"] for e in payloads]
    assert kinds.count("start-step") == 50 and kinds.count("finish-step") == 50
    assert kinds.count("tool-output-available") == 50
    [error] = [e for e in payloads if e["type"] == "error"]
    assert "50 steps" in error["errorText"] and "Send a message" in error["errorText"]
    [finish] = [e for e in payloads if e["type"] == "finish"]
    assert finish["messageMetadata"]["finish_reason"] == "step-limit"
    assert payloads[-1] == {"type": "data-status", "data": {"status": "idle", "reason": "step-limit"}}

    # Every step is stored, then the notice, so a reload shows why the turn stopped.
    messages = await admin_api.messages(chat_id)
    assert [m["role"] for m in messages] == ["user", *["assistant", "tool"] * 50, "assistant"]
    assert all(not p["is_error"] for m in messages if m["role"] == "tool" for p in m["parts"])
    [notice] = messages[-1]["parts"]
    assert notice["type"] == "error" and notice["reason"] == "step-limit" and "50 steps" in notice["text"]
    assert (await admin_api.get(f"/chats/{chat_id}"))["status"] == "idle"

    # The chat goes on: the model gets all 50 calls with their results (not the notice).
    fake_model.default = Reply(text="stopping now")
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "go on"}, expect=202)
    await admin_api.events(chat_id, turn_ended())
    sent = fake_model.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", *["assistant", "tool"] * 50, "user"]
    assert (await admin_api.messages(chat_id))[-1]["parts"] == [{"type": "text", "text": "stopping now"}]
