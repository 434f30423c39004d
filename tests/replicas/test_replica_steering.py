"""Steering a chat across replicas: a tool toggle and a tool budget set through a replica that does
not run the turn reach the running turn at its next step (the holder reads the chat row from the
shared database before each step)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.replicas.conftest import Service, new_chat, new_workspace
from tests.support.agent import RunningAgent
from tests.support.helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def test_a_patch_through_another_replica_applies_from_the_running_turns_next_step(
    start_service: Callable[..., Service], fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent]
) -> None:
    service = start_service(2)
    agent = start_agent({})
    chat_id = await new_chat(service.apis[0], await new_workspace(service.apis[0], agent.url))
    hold = threading.Event()
    fake_model.add(Reply(calls=[Call("process_list", {})], hold=hold), Reply(text="done"))
    try:
        await service.apis[0].post(f"/chats/{chat_id}/messages", {"content": "go"}, expect=202)
        await wait_until(lambda: fake_model.requests, timeout=30, message="the turn's first step")
        holder = await service.wait_holder(chat_id)
        other = next(api for api in service.apis if not api.base_url.endswith(holder))
        # Changed through the replica that does not hold the chat, while the first step runs.
        chat = await other.request(
            "PATCH",
            f"/chats/{chat_id}",
            json={"disabled_tools": {"tools": ["read_file"]}, "tool_budget": {"max_tools": 1}},
        )
        assert chat["disabled_tools"]["tools"] == ["read_file"]
        assert chat["tool_budget"]["max_tools"] == 1
    finally:
        hold.set()
    await other.wait_status(chat_id, "idle", timeout=60)
    first, second = (set(fake_model.tool_names(i)) for i in range(2))
    assert "read_file" in first and "find_tools" not in first
    assert "read_file" not in second and {"find_tools", "process_list"} <= second
