"""A server killed mid-turn loses no completed step; after a restart the chat is usable."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.conftest import wait_until
from tests.support.agent import RunningAgent

pytestmark = pytest.mark.anyio


async def test_kill_mid_turn_then_restart(
    start_chat_server: Callable[..., ChatServer],
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    workspace_dir: Path,
    tmp_path: Path,
) -> None:
    agent = start_agent({})
    data_dir = tmp_path / "data"
    server = start_chat_server(subprocess_mode=True, data_dir=data_dir)
    hold = threading.Event()
    fake_model.add(
        Reply(text="writing", calls=[Call("write_file", {"path": "out.txt", "content": "step one"})]),
        Reply(text="this step never completes", hold=hold),
    )
    api = Api(server.url, server.admin_token)
    try:
        chat_id = await new_chat(api, agent.url)
        await api.post(f"/chats/{chat_id}/messages", {"content": "do two steps"}, expect=202)
        # The second model request starts only after step one is stored.
        await wait_until(
            lambda: len(fake_model.requests) == 2, timeout=30, message="the second step to start"
        )
        assert (workspace_dir / "out.txt").read_text() == "step one"
        server.kill()
        await api.aclose()

        server = start_chat_server(subprocess_mode=True, data_dir=data_dir)
        api = Api(server.url, server.admin_token)
        chat = await api.get(f"/chats/{chat_id}")
        assert chat["status"] == "interrupted" and not chat["running"]
        messages = await api.messages(chat_id)
        assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
        assert messages[1]["parts"][0] == {"type": "text", "text": "writing"}
        assert (
            messages[2]["parts"][0]["tool_name"] == "write_file" and not messages[2]["parts"][0]["is_error"]
        )
        # The history says where the turn was cut off, for every later reader.
        assert messages[3]["parts"] == [
            {"type": "interrupted", "reason": "server", "text": "The server stopped during this turn."}
        ]

        fake_model.add(Reply(text="back again"))
        await api.post(f"/chats/{chat_id}/messages", {"content": "are you there?"}, expect=202)
        await api.events(chat_id, turn_ended())
        assert (await api.get(f"/chats/{chat_id}"))["status"] == "idle"
        messages = await api.messages(chat_id)
        assert messages[-1]["parts"] == [{"type": "text", "text": "back again"}]
        # The model got a valid history: the stored call and its result, then the new question.
        roles = [m["role"] for m in fake_model.requests[-1]["messages"]]
        assert roles[-4:] == ["user", "assistant", "tool", "user"]
    finally:
        hold.set()
        await api.aclose()


async def test_a_turn_cut_off_by_a_shutdown_is_marked_as_the_servers_doing(
    start_chat_server: Callable[..., ChatServer],
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    tmp_path: Path,
) -> None:
    agent = start_agent({})
    data_dir = tmp_path / "data"
    server = start_chat_server(subprocess_mode=True, data_dir=data_dir)
    hold = threading.Event()
    fake_model.add(Reply(text="cut off", hold=hold))
    api = Api(server.url, server.admin_token)
    try:
        chat_id = await new_chat(api, agent.url)
        await api.post(f"/chats/{chat_id}/messages", {"content": "go"}, expect=202)
        await wait_until(lambda: len(fake_model.requests) == 1, timeout=30, message="the turn to start")
        await api.aclose()
        server.stop()  # SIGTERM: a clean shutdown stops the turn itself

        server = start_chat_server(subprocess_mode=True, data_dir=data_dir)
        api = Api(server.url, server.admin_token)
        assert (await api.get(f"/chats/{chat_id}"))["status"] == "interrupted"
        messages = await api.messages(chat_id)
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[-1]["parts"] == [
            {"type": "interrupted", "reason": "server", "text": "The server stopped during this turn."}
        ]
    finally:
        hold.set()
        await api.aclose()
