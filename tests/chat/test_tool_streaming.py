"""A running tool call on the chat's stream: progress and live output on its card, requests for
input answered through the API (every watcher sees them, an interrupt expires them), and an
interrupted `execute` that keeps what it printed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import new_chat
from tests.support.agent import RunningAgent, fixture_server

pytestmark = pytest.mark.anyio


def _of_type(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["type"] == kind


def _settled(event: dict[str, Any]) -> bool:
    """The end of a turn, for a watcher that resumed after its start."""
    return event["type"] == "data-status" and event["data"]["status"] != "running"


def _pending(event: dict[str, Any]) -> bool:
    return event["type"] == "data-tool-elicitation" and event["data"]["status"] == "pending"


def _result_text(messages: list[dict[str, Any]], tool: str) -> str:
    for message in messages:
        for part in message["parts"]:
            if part.get("type") == "tool-result" and part["tool_name"] == tool:
                return "\n".join(c.get("text", "") for c in part["content"])
    raise AssertionError(f"no stored result of {tool}")


async def test_progress_and_live_output_on_the_cards(
    admin_api: Api, fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent], workspace_dir: Path
) -> None:
    agent = start_agent({"slow": fixture_server("slow_tool.py")})
    agent.wait_state("slow", "ready")
    chat_id = await new_chat(admin_api, agent.url)
    fake_model.add(
        Reply(
            calls=[
                Call("slow__sleep", {"seconds": 1}, id="c-sleep"),
                Call("execute", {"command": "echo ready; while [ ! -f go ]; do sleep 0.05; done; echo bye"}),
            ]
        ),
        Reply(text="done"),
    )
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "go"}, expect=202)
    # the command cannot end until told to: its output reached the card while it ran
    seen = await admin_api.events(
        chat_id, lambda e: e["type"] == "data-tool-output" and "ready" in e["data"]["text"]
    )
    (workspace_dir / "go").write_text("")
    seen += await admin_api.events(chat_id, _settled, last_event_id=seen[-1][0])
    chunks = [e for _, e in seen]
    progress = [e for e in chunks if e["type"] == "data-tool-progress"]
    assert progress and {e["id"] for e in progress} == {"progress-c-sleep"}
    assert progress[-1]["data"] == {
        "toolCallId": "c-sleep",
        "progress": pytest.approx(1),
        "total": 1,
        "message": progress[-1]["data"]["message"],
    }
    sleep_done = chunks.index(next(e for e in chunks if e.get("toolCallId") == "c-sleep" and "output" in e))
    assert chunks.index(progress[0]) < sleep_done
    output = [e for e in chunks if e["type"] == "data-tool-output"]
    execute_id = output[0]["data"]["toolCallId"]
    assert "".join(e["data"]["text"] for e in output) == "ready\nbye\n"
    done = next(i for i, e in enumerate(chunks) if e.get("toolCallId") == execute_id and "output" in e)
    assert chunks.index(output[-1]) < done
    assert "ready\nbye" in _result_text(await admin_api.messages(chat_id), "execute")


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_a_request_for_input_is_answered_from_the_api_and_every_watcher_sees_it(
    admin_api: Api, fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent], era: str
) -> None:
    agent = start_agent(
        {"asks": fixture_server("asks_user.py", **({"FIXTURE_ERA": era} if era == "legacy" else {}))}
    )
    agent.wait_state("asks", "ready")
    chat_id = await new_chat(admin_api, agent.url)
    fake_model.add(Reply(calls=[Call("asks__ask", {"question": "Your name?"}, id="c-ask")]), Reply(text="ok"))
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "ask me"}, expect=202)
    pending_id, first = (await admin_api.events(chat_id, _pending))[-1]
    # a second watcher (a reload: the stream replays the running turn) sees the same pending form
    again = (await admin_api.events(chat_id, _pending))[-1][1]
    assert again == first
    data = first["data"]
    assert data["toolCallId"] == "c-ask" and data["message"] == "Your name?" and data["mode"] == "form"
    assert data["requested_schema"]["required"] == ["answer"]
    path = f"/chats/{chat_id}/elicitations/{data['elicitationId']}"
    bad = await admin_api.post(path, {"action": "accept", "content": {"count": "two"}}, expect=400)
    assert set(bad) == {"message", "detail"}
    await admin_api.post(path, {"action": "bogus"}, expect=400)
    await admin_api.post(f"/chats/{chat_id}/elicitations/nope", {"action": "decline"}, expect=404)
    answered = await admin_api.post(path, {"action": "accept", "content": {"answer": "Ada", "sure": True}})
    assert answered == {"id": data["elicitationId"], "action": "accept"}
    await admin_api.post(path, {"action": "decline"}, expect=409)
    seen = await admin_api.events(chat_id, _settled, last_event_id=pending_id)
    statuses = [e["data"]["status"] for _, e in seen if e["type"] == "data-tool-elicitation"]
    assert statuses == ["accept"]
    await admin_api.post(path, {"action": "cancel"}, expect=409)  # the turn is over: still answered
    assert _result_text(await admin_api.messages(chat_id), "asks__ask") == "accepted: Ada x1 sure=True"


async def test_an_interrupt_expires_the_request_and_the_output_so_far_is_stored(
    admin_api: Api, fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent]
) -> None:
    agent = start_agent({"asks": fixture_server("asks_user.py", FIXTURE_ERA="legacy")})
    agent.wait_state("asks", "ready")
    chat_id = await new_chat(admin_api, agent.url)
    fake_model.add(
        Reply(
            calls=[
                Call("asks__ask", {}, id="c-ask"),
                Call("execute", {"command": "echo partial-output; sleep 60"}, id="c-exec"),
            ]
        )
    )
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "go"}, expect=202)
    seen = await admin_api.events(chat_id, _pending)
    if not any(e["type"] == "data-tool-output" for _, e in seen):
        seen += await admin_api.events(chat_id, _of_type("data-tool-output"), last_event_id=seen[-1][0])
    pending = next(e for _, e in seen if _pending(e))["data"]
    assert await admin_api.post(f"/chats/{chat_id}/interrupt") == {"interrupted": True}
    await admin_api.wait_status(chat_id, "interrupted")
    expired = await admin_api.events(
        chat_id,
        lambda e: e["type"] == "data-tool-elicitation" and e["data"]["status"] != "pending",
        last_event_id=seen[-1][0],
    )
    assert expired[-1][1]["data"]["status"] == "expired"
    await admin_api.post(
        f"/chats/{chat_id}/elicitations/{pending['elicitationId']}", {"action": "decline"}, expect=404
    )
    messages = await admin_api.messages(chat_id)
    stored = _result_text(messages, "execute")
    assert stored.startswith("partial-output\n") and stored.endswith(
        "[interrupted before this call finished]"
    )
    assert _result_text(messages, "asks__ask") == "interrupted before this call finished"


async def test_admin_server_progress_and_elicitation(
    start_chat_server: Callable[..., ChatServer],
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    everything_http_url: str,
) -> None:
    server = start_chat_server()
    api = Api(server.url, server.admin_token)
    try:
        await api.post("/mcp-servers", {"slug": "ev", "url": everything_http_url}, expect=201)
        agent = start_agent({})
        chat_id = await new_chat(api, agent.url)

        async def offered() -> bool:
            tools = await api.get(f"/chats/{chat_id}/tools")
            return "ev__trigger-elicitation-request" in {t["name"] for t in tools["tools"]}

        with anyio.fail_after(30):
            while not await offered():
                await anyio.sleep(0.1)
        # One after the other: a 2025-era server's request for input names no call, so it is
        # relayed only while its call is the one call in flight on that server.
        fake_model.add(
            Reply(
                calls=[Call("ev__trigger-long-running-operation", {"duration": 1, "steps": 2}, id="c-long")]
            ),
            Reply(calls=[Call("ev__trigger-elicitation-request", {}, id="c-form")]),
            Reply(text="thanks"),
        )
        await api.post(f"/chats/{chat_id}/messages", {"content": "go"}, expect=202)
        before = await api.events(chat_id, _pending)
        pending = before[-1][1]["data"]
        assert pending["toolCallId"] == "c-form" and "name" in pending["requested_schema"]["properties"]
        await api.post(
            f"/chats/{chat_id}/elicitations/{pending['elicitationId']}",
            {"action": "accept", "content": {"name": "Grace Hopper", "check": True}},
        )
        seen = before + await api.events(chat_id, _settled, last_event_id=before[-1][0])
        progress = [e["data"] for _, e in seen if e["type"] == "data-tool-progress"]
        assert progress and progress[-1]["toolCallId"] == "c-long" and progress[-1]["total"] == 2
        assert "Grace Hopper" in _result_text(await api.messages(chat_id), "ev__trigger-elicitation-request")
    finally:
        await api.aclose()
