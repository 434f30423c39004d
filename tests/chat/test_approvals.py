"""Approving tool calls before they run: each policy, approve / deny / always allow, a step with
calls that wait beside calls that run, several watchers, a restart and an interrupt while a call
waits. Real chat server, real agent, real MCP server, the scripted fake model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.conftest import wait_until
from tests.support.agent import RunningAgent

pytestmark = pytest.mark.anyio


def kind(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["type"] == name


def approval_requests(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [e["toolCallId"] for _, e in events if e["type"] == "tool-approval-request"]


async def pending(api: Api, chat_id: str, count: int = 1) -> list[dict[str, Any]]:
    """Wait until ``count`` calls of the chat wait for an answer; they are returned."""
    found: list[dict[str, Any]] = []

    async def ready() -> bool:
        nonlocal found
        found = (await api.get(f"/chats/{chat_id}"))["pending_approvals"]
        return len(found) == count

    await wait_until(ready, timeout=30, message=f"{count} pending approval(s)")
    return found


def tool_text(fake: FakeOpenAI, request: int) -> dict[str, str]:
    return {m["tool_call_id"]: str(m["content"]) for m in fake.tool_messages(request)}


async def test_ask_policy_a_step_with_one_call_to_approve_and_one_that_runs_meanwhile(
    admin_api: Api, fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent], workspace_dir: Path
) -> None:
    agent = start_agent({})
    (workspace_dir / "notes.txt").write_text("read me\n")
    chat_id = await new_chat(admin_api, agent.url, approval_policy="ask")
    fake_model.add(
        Reply(
            calls=[
                Call("write_file", {"path": "out.txt", "content": "approved"}),
                Call("read_file", {"path": "notes.txt"}),
            ]
        ),
        Reply(text="written"),
    )
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "write it"}, expect=202)
    [waiting] = await pending(admin_api, chat_id)
    assert waiting["tool_name"] == "write_file"
    # The read-only call ran while the other waits; nothing was written yet.
    events = await admin_api.events(chat_id, kind("tool-output-available"))
    assert approval_requests(events) == [waiting["tool_call_id"]]
    request = next(e for _, e in events if e["type"] == "tool-approval-request")
    assert request["approvalId"] == waiting["tool_call_id"]
    outputs = [e for _, e in events if e["type"] == "tool-output-available"]
    assert "read me" in json.dumps(outputs[0]["output"])
    assert not (workspace_dir / "out.txt").exists()
    assert (await admin_api.get(f"/chats/{chat_id}"))["status"] == "running"
    assert len(fake_model.requests) == 1  # the model waits for the whole step

    answer = await admin_api.post(f"/chats/{chat_id}/approvals/{waiting['tool_call_id']}", {"approve": True})
    assert answer == {"answered": [waiting["tool_call_id"]]}
    await admin_api.wait_status(chat_id, "idle")
    assert (workspace_dir / "out.txt").read_text() == "approved"
    results = tool_text(fake_model, 1)
    assert len(results) == 2 and "read me" in "".join(results.values())
    # The answered call cannot be answered again.
    await admin_api.post(
        f"/chats/{chat_id}/approvals/{waiting['tool_call_id']}", {"approve": True}, expect=404
    )
    messages = await admin_api.messages(chat_id)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert {p["tool_name"]: p["is_error"] for p in messages[2]["parts"]} == {
        "write_file": False,
        "read_file": False,
    }


async def test_deny_with_a_reason_the_model_reads(
    admin_api: Api, fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent], workspace_dir: Path
) -> None:
    agent = start_agent({})
    chat_id = await new_chat(admin_api, agent.url, approval_policy="ask")
    fake_model.add(Reply(calls=[Call("execute", {"command": "touch ran.txt"})]), Reply(text="ok, not run"))
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "run it"}, expect=202)
    [waiting] = await pending(admin_api, chat_id)
    call_id = waiting["tool_call_id"]
    await admin_api.post(
        f"/chats/{chat_id}/approvals/{call_id}", {"approve": False, "reason": "not on my machine"}
    )
    events = await admin_api.events(chat_id, turn_ended())
    kinds = [e["type"] for _, e in events]
    assert {"type": "tool-output-denied", "toolCallId": call_id} in [e for _, e in events]
    assert kinds.index("tool-approval-request") < kinds.index("tool-approval-response")
    assert not (workspace_dir / "ran.txt").exists()
    assert "not on my machine" in tool_text(fake_model, 1)[call_id]
    assert "denied" in tool_text(fake_model, 1)[call_id]
    stored = (await admin_api.messages(chat_id))[2]["parts"][0]
    assert stored["is_error"] and stored["denied"] is True


async def test_always_allow_is_remembered_on_the_chat(
    admin_api: Api, fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent], workspace_dir: Path
) -> None:
    agent = start_agent({})
    chat_id = await new_chat(admin_api, agent.url, approval_policy="ask-all")
    fake_model.add(
        Reply(calls=[Call("write_file", {"path": "a.txt", "content": "1"})]),
        Reply(text="one"),
        Reply(
            calls=[
                Call("write_file", {"path": "b.txt", "content": "2"}),
                Call("read_file", {"path": "a.txt"}),
            ]
        ),
        Reply(text="two"),
    )
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "first"}, expect=202)
    [waiting] = await pending(admin_api, chat_id)
    await admin_api.post(
        f"/chats/{chat_id}/approvals/{waiting['tool_call_id']}", {"approve": True, "always": True}
    )
    await admin_api.wait_status(chat_id, "idle")
    assert (await admin_api.get(f"/chats/{chat_id}"))["always_allow"] == ["write_file"]

    # Next turn: write_file runs unasked; read_file still asks (the policy is ask-all).
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "second"}, expect=202)
    [waiting] = await pending(admin_api, chat_id)
    assert waiting["tool_name"] == "read_file"
    await wait_until(lambda: (workspace_dir / "b.txt").exists(), timeout=30, message="b.txt written unasked")
    await admin_api.post(f"/chats/{chat_id}/approvals/{waiting['tool_call_id']}", {"approve": True})
    await admin_api.wait_status(chat_id, "idle")

    # Taking it back: PATCH the list.
    chat = await admin_api.request("PATCH", f"/chats/{chat_id}", json={"always_allow": []})
    assert chat["always_allow"] == []


async def test_auto_runs_everything_and_read_only_mcp_tools_run_unasked_under_ask(
    admin_api: Api,
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    everything_stdio: dict[str, Any],
    workspace_dir: Path,
) -> None:
    agent = start_agent({"everything": everything_stdio})
    agent.wait_state("everything", "ready")
    auto = await new_chat(admin_api, agent.url)
    assert (await admin_api.get(f"/chats/{auto}"))["approval_policy"] == "auto"
    fake_model.add(Reply(calls=[Call("write_file", {"path": "auto.txt", "content": "x"})]), Reply(text="ok"))
    await admin_api.post(f"/chats/{auto}/messages", {"content": "go"}, expect=202)
    events = await admin_api.events(auto, turn_ended())
    assert approval_requests(events) == [] and (workspace_dir / "auto.txt").exists()

    workspace_id = (await admin_api.get(f"/chats/{auto}"))["workspace_id"]
    ask = (
        await admin_api.post("/chats", {"workspace_id": workspace_id, "approval_policy": "ask"}, expect=201)
    )["id"]
    fake_model.add(Reply(calls=[Call("everything__echo", {"message": "hi"})]), Reply(text="echoed"))
    await admin_api.post(f"/chats/{ask}/messages", {"content": "echo"}, expect=202)
    events = await admin_api.events(ask, turn_ended())
    assert approval_requests(events) == []  # echo is annotated readOnlyHint: true
    assert "Echo: hi" in "".join(tool_text(fake_model, 3).values())


async def test_two_watchers_see_the_pending_call_and_its_answer(
    admin_api: Api, fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent], chat_server: ChatServer
) -> None:
    agent = start_agent({})
    chat_id = await new_chat(admin_api, agent.url, approval_policy="ask")
    fake_model.add(Reply(calls=[Call("write_file", {"path": "w.txt", "content": "w"})]), Reply(text="done"))
    other = Api(chat_server.url, chat_server.admin_token)
    try:
        await admin_api.post(f"/chats/{chat_id}/messages", {"content": "go"}, expect=202)
        [waiting] = await pending(admin_api, chat_id)
        seen: dict[str, list[dict[str, Any]]] = {"one": [], "two": []}

        async def watch(name: str, api: Api) -> None:
            ended = turn_ended()

            def until(event: dict[str, Any]) -> bool:
                seen[name].append(event)
                return ended(event)

            await api.events(chat_id, until)

        def asked(name: str) -> bool:
            return any(e["type"] == "tool-approval-request" for e in seen[name])

        async with anyio.create_task_group() as group:
            group.start_soon(watch, "one", admin_api)
            group.start_soon(watch, "two", other)
            # Both see the request (replayed from the turn's start) before anyone answers.
            await wait_until(lambda: asked("one") and asked("two"), timeout=30, message="both watchers asked")
            await admin_api.post(f"/chats/{chat_id}/approvals/{waiting['tool_call_id']}", {"approve": True})
        for events in seen.values():
            assert [e["toolCallId"] for e in events if e["type"] == "tool-approval-request"] == [
                waiting["tool_call_id"]
            ]
            assert any(e["type"] == "tool-approval-response" and e["approved"] for e in events)
            assert any(e["type"] == "tool-output-available" for e in events)
    finally:
        await other.aclose()


async def test_interrupt_ends_the_wait_and_stores_the_call_as_not_run(
    admin_api: Api, fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent], workspace_dir: Path
) -> None:
    agent = start_agent({})
    chat_id = await new_chat(admin_api, agent.url, approval_policy="ask")
    fake_model.add(Reply(calls=[Call("write_file", {"path": "never.txt", "content": "x"})]))
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "go"}, expect=202)
    [waiting] = await pending(admin_api, chat_id)
    assert await admin_api.post(f"/chats/{chat_id}/interrupt") == {"interrupted": True}
    chat = await admin_api.wait_status(chat_id, "interrupted")
    assert chat["pending_approvals"] == []
    messages = await admin_api.messages(chat_id)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    result = messages[2]["parts"][0]
    assert result["tool_call_id"] == waiting["tool_call_id"] and result["not_run"] is True
    assert messages[3]["parts"][0]["type"] == "interrupted"
    assert not (workspace_dir / "never.txt").exists()
    await admin_api.post(
        f"/chats/{chat_id}/approvals/{waiting['tool_call_id']}", {"approve": True}, expect=404
    )


async def test_a_restart_while_a_call_waits_takes_the_turn_up_again(
    start_chat_server: Callable[..., ChatServer],
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    workspace_dir: Path,
    tmp_path: Path,
) -> None:
    agent = start_agent({})
    (workspace_dir / "notes.txt").write_text("before the restart\n")
    data_dir = tmp_path / "data"
    server = start_chat_server(subprocess_mode=True, data_dir=data_dir)
    fake_model.add(
        Reply(text="first step", calls=[Call("read_file", {"path": "notes.txt"})]),
        Reply(
            text="second step",
            calls=[
                Call("write_file", {"path": "after.txt", "content": "after"}),
                Call("read_file", {"path": "notes.txt"}),
            ],
        ),
        Reply(text="all done"),
    )
    api = Api(server.url, server.admin_token)
    try:
        chat_id = await new_chat(api, agent.url, approval_policy="ask")
        await api.post(f"/chats/{chat_id}/messages", {"content": "two steps"}, expect=202)
        [waiting] = await pending(api, chat_id)
        step = (await api.messages(chat_id))[-1]["parts"]
        read_id = next(p["tool_call_id"] for p in step if p.get("tool_name") == "read_file")
        # The read beside it finishes (streamed once stored) before the kill.
        await api.events(
            chat_id, lambda e: e["type"] == "tool-output-available" and e["toolCallId"] == read_id
        )
        server.kill()
        await api.aclose()

        server = start_chat_server(subprocess_mode=True, data_dir=data_dir)
        api = Api(server.url, server.admin_token)
        chat = await api.get(f"/chats/{chat_id}")
        assert chat["status"] == "running"
        assert [p["tool_call_id"] for p in (await pending(api, chat_id))] == [waiting["tool_call_id"]]
        # A new watcher of the taken-up turn is asked again.
        events = await api.events(chat_id, kind("tool-approval-request"))
        assert approval_requests(events) == [waiting["tool_call_id"]]
        assert not (workspace_dir / "after.txt").exists()

        await api.post(f"/chats/{chat_id}/approvals/{waiting['tool_call_id']}", {"approve": True})
        await api.wait_status(chat_id, "idle")
        assert (workspace_dir / "after.txt").read_text() == "after"
        messages = await api.messages(chat_id)
        assert [m["role"] for m in messages] == [
            "user",
            "assistant",
            "tool",
            "assistant",
            "tool",
            "assistant",
        ]
        assert messages[-1]["parts"] == [{"type": "text", "text": "all done"}]
        # The step was not run from scratch: three model requests in all, and the read that had
        # finished before the kill was not run again (its stored result went to the model).
        assert len(fake_model.requests) == 3
        last_step = fake_model.tool_messages(2)[-2:]
        assert {m["tool_call_id"] for m in last_step} == {waiting["tool_call_id"], read_id}
        assert "before the restart" in next(
            str(m["content"]) for m in last_step if m["tool_call_id"] == read_id
        )
    finally:
        await api.aclose()


async def test_the_default_policy_is_the_admins_setting(admin_api: Api, chat_server: ChatServer) -> None:
    assert await admin_api.get("/settings") == {"default_approval_policy": "auto"}
    await admin_api.request("PATCH", "/settings", json={"default_approval_policy": "ask"})
    workspace = await admin_api.post(
        "/workspaces", {"name": "w", "agent_url": "http://127.0.0.1:9", "agent_token": "t"}, expect=201
    )
    chat = await admin_api.post("/chats", {"workspace_id": workspace["id"]}, expect=201)
    assert chat["approval_policy"] == "ask"
    explicit = await admin_api.post(
        "/chats", {"workspace_id": workspace["id"], "approval_policy": "auto"}, expect=201
    )
    assert explicit["approval_policy"] == "auto"
    await admin_api.request("PATCH", f"/chats/{chat['id']}", json={"approval_policy": "ask-all"})
    assert (await admin_api.get(f"/chats/{chat['id']}"))["approval_policy"] == "ask-all"

    # Bad input is a 400 in the one error shape; a user who is not an admin gets 403.
    for body in ({"default_approval_policy": "never"}, {"default_approval_policy": None}, {"x": 1}):
        error = await admin_api.request("PATCH", "/settings", 400, json=body)
        assert set(error) == {"message", "detail"}
    await admin_api.request("PATCH", f"/chats/{chat['id']}", 400, json={"approval_policy": "sometimes"})
    await admin_api.post(f"/chats/{chat['id']}/approvals/nope", {"approve": "maybe"}, expect=400)
    await admin_api.post(f"/chats/{chat['id']}/approvals/nope", {"approve": True}, expect=404)
    await admin_api.post(
        f"/chats/{chat['id']}/approvals/nope", {"approve": False, "reason": "x" * 5000}, expect=400
    )
    user = await admin_api.post("/users", {"name": "bob"}, expect=201)
    token = (await admin_api.post(f"/users/{user['id']}/tokens", {"name": "t"}, expect=201))["token"]
    bob = Api(chat_server.url, token)
    try:
        await bob.get("/settings", expect=403)
        await bob.post(f"/chats/{chat['id']}/approvals/nope", {"approve": True}, expect=404)
    finally:
        await bob.aclose()
