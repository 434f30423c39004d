"""The workspace tool catalog is cached by ETag (spec/chat.md 4.1) and dropped when a call
answers 404, observed on the wire between the chat server and a real agent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chat.conftest import Api
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.recording_proxy import RecordingProxy
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.support.agent import RunningAgent, fixture_server, write_config
from tests.support.helpers import free_port, wait_until_sync

pytestmark = pytest.mark.anyio


@pytest.fixture
def start_proxy() -> Iterator[Callable[[str], RecordingProxy]]:
    proxies: list[RecordingProxy] = []

    def start(upstream: str) -> RecordingProxy:
        proxies.append(RecordingProxy(upstream).start(free_port()))
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.stop()


async def _turn(api: Api, chat_id: str, content: str) -> None:
    await api.post(f"/chats/{chat_id}/messages", {"content": content}, expect=202)
    await api.events(chat_id, turn_ended())


async def test_the_catalog_is_revalidated_by_etag_and_dropped_when_a_call_answers_404(
    admin_api: Api,
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    start_proxy: Callable[[str], RecordingProxy],
    workspace_dir: Path,
) -> None:
    servers = {"kinds": fixture_server("content_kinds.py"), "gone": fixture_server("content_kinds.py")}
    agent = start_agent(servers)  # the agent watches .mcp.json (its default)
    agent.wait_state("kinds", "ready")
    agent.wait_state("gone", "ready")
    proxy = start_proxy(agent.url)
    chat_id = await new_chat(admin_api, proxy.url)

    # Turn 1 downloads the catalog; turn 2 revalidates it: If-None-Match, 304, the same tools offered.
    fake_model.add(Reply(text="one"), Reply(text="two"))
    await _turn(admin_api, chat_id, "first")
    await _turn(admin_api, chat_id, "second")
    first, second = proxy.tool_listings()
    assert (first.if_none_match, first.status) == (None, 200)
    assert second.if_none_match is not None and second.status == 304
    assert {"kinds__text", "gone__text"} <= set(fake_model.tool_names(0))
    assert fake_model.tool_names(1) == fake_model.tool_names(0)

    # Turn 3: the server leaves .mcp.json after the turn gathered its tools, so calling one of
    # them answers 404; the model gets an error result and the cache is dropped.
    def remove_then_call(_: dict[str, Any]) -> Reply:
        write_config(workspace_dir / ".mcp.json", {"kinds": servers["kinds"]})
        wait_until_sync(
            lambda: "gone__text" not in agent.tool_names(),
            timeout=20,
            message="the agent to drop the removed server",
        )
        return Reply(calls=[Call("gone__text", {})])

    fake_model.add(remove_then_call, Reply(text="it is gone"))
    await _turn(admin_api, chat_id, "third")
    [result] = (await admin_api.messages(chat_id))[-2]["parts"]
    assert result["is_error"] and "no longer offered" in result["content"][0]["text"]
    calls = [e for e in proxy.exchanges if e.path == "/api/v0/mcp/call-tool"]
    assert [c.status for c in calls] == [404]
    assert len(proxy.tool_listings()) == 3  # turn 3 revalidated once, at its start

    # Turn 4 downloads the catalog afresh (no If-None-Match) and no longer offers the tool.
    fake_model.add(Reply(text="four"))
    await _turn(admin_api, chat_id, "fourth")
    fourth = proxy.tool_listings()[-1]
    assert (fourth.if_none_match, fourth.status) == (None, 200)
    names = fake_model.tool_names(len(fake_model.requests) - 1)
    assert "kinds__text" in names and not any(n.startswith("gone__") for n in names)
