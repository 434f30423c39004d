"""A whole chat turn through the agent link: fake model → chat server → link → an agent process
with no listening socket → a real MCP server, files and commands; then the agent away and back."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import turn_ended
from tests.link.conftest import agent_state, new_linked_workspace, wait_connected, wait_ready
from tests.link.test_link_calls import cancellations
from tests.support.helpers import wait_until
from tests.support.linked import LinkedAgent

pytestmark = pytest.mark.anyio


def results_of(fake: FakeOpenAI, request_index: int) -> list[str]:
    return [str(m["content"]) for m in fake.tool_messages(request_index)]


async def test_an_agent_with_no_listening_socket_serves_a_whole_turn(
    chat_server: ChatServer,
    admin_api: Api,
    fake_model: FakeOpenAI,
    start_linked_agent: Callable[..., LinkedAgent],
    slow_servers: dict[str, Any],
    workspace_dir: Path,
) -> None:
    workspace = await new_linked_workspace(admin_api)
    assert workspace["connection"] == "link" and workspace["agent_token"].startswith("wdk_")
    command = workspace["connect"]["command"]
    assert command == f"workdock agent --server {chat_server.url} --dir ."
    assert workspace["connect"]["env"] == {"WORKDOCK_AGENT_TOKEN": workspace["agent_token"]}

    agent = start_linked_agent(chat_server.url, workspace["agent_token"], slow_servers)
    state = await wait_connected(admin_api, workspace["id"])
    assert state["connection"] == "link" and state["agent_version"] and state["peer"].startswith("127.0.0.1:")
    assert state["connected_since"] and state["disconnected_since"] is None
    await wait_ready(admin_api, workspace["id"], "slow")
    # Dialled out, serving no port of its own: nothing in LISTEN state for the agent's process.
    assert agent.listening() == set()

    chat = await admin_api.post("/chats", {"workspace_id": workspace["id"]}, expect=201)
    fake_model.add(
        Reply(
            calls=[
                Call("slow__echo", {"text": "through the link"}),
                Call("write_file", {"path": "notes/hello.txt", "content": "written over the link\n"}),
            ]
        ),
        Reply(
            calls=[
                Call("read_file", {"path": "notes/hello.txt"}),
                Call("execute", {"command": "cat notes/hello.txt | tr a-z A-Z; echo $((6 * 7))"}),
            ]
        ),
        Reply(text="All four tools answered."),
    )
    await admin_api.post(f"/chats/{chat['id']}/messages", {"content": "use the workspace"}, expect=202)
    await admin_api.events(chat["id"], turn_ended())

    assert {"slow__echo", "read_file", "write_file", "execute"} <= set(fake_model.tool_names(0))
    first, second = results_of(fake_model, 1), results_of(fake_model, 2)
    assert any("through the link" in r for r in first)
    assert (workspace_dir / "notes" / "hello.txt").read_text() == "written over the link\n"
    assert any("written over the link" in r for r in second)
    assert any("WRITTEN OVER THE LINK" in r and "42" in r for r in second)
    messages = await admin_api.messages(chat["id"])
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert not any(p["is_error"] for m in messages if m["role"] == "tool" for p in m["parts"])
    assert agent.listening() == set()


async def test_a_killed_agent_fails_its_tools_at_once_and_a_restarted_one_serves_again(
    chat_server: ChatServer,
    admin_api: Api,
    fake_model: FakeOpenAI,
    start_linked_agent: Callable[..., LinkedAgent],
    slow_servers: dict[str, Any],
) -> None:
    workspace = await new_linked_workspace(admin_api)
    token = workspace["agent_token"]
    agent = start_linked_agent(chat_server.url, token, slow_servers)
    await wait_ready(admin_api, workspace["id"], "slow")
    chat = await admin_api.post("/chats", {"workspace_id": workspace["id"]}, expect=201)

    agent.kill9()  # no goodbye: the server learns it from the connection
    state = await wait_connected(admin_api, workspace["id"], connected=False)
    assert state["reachable"] is False and state["connected_since"] is None
    assert state["disconnected_since"] and state["last_error"]
    assert state["error"].startswith("the workspace agent is not connected, since ")
    tools = await admin_api.get(f"/chats/{chat['id']}/tools")
    failures = {f["source"]: f["error"] for f in tools["failures"]}
    assert set(failures) == {"builtin", "workspace"}
    assert all(e.startswith("the workspace agent is not connected, since ") for e in failures.values())

    # A call made while the agent is away fails at once (the tool timeout is a minute).
    fake_model.add(Reply(calls=[Call("read_file", {"path": "x.txt"})]), Reply(text="it is away"))
    await admin_api.post(f"/chats/{chat['id']}/messages", {"content": "read"}, expect=202)
    events = await admin_api.events(chat["id"], turn_ended())
    statuses = [e["data"] for _, e in events if e["type"] == "data-status" and e["data"].get("tool_failures")]
    assert statuses and {f["source"] for f in statuses[0]["tool_failures"]} == {"builtin", "workspace"}
    [result] = [p for m in await admin_api.messages(chat["id"]) if m["role"] == "tool" for p in m["parts"]]
    assert result["is_error"] and "not connected, since" in json.dumps(result["content"])
    assert result["duration_ms"] < 10_000

    start_linked_agent(chat_server.url, token, slow_servers)
    await wait_connected(admin_api, workspace["id"])
    state = await wait_ready(admin_api, workspace["id"], "slow")
    assert state["reachable"] is True
    fake_model.add(Reply(calls=[Call("slow__echo", {"text": "back"})]), Reply(text="back again"))
    await admin_api.post(f"/chats/{chat['id']}/messages", {"content": "again"}, expect=202)
    await admin_api.events(chat["id"], turn_ended())
    assert any("back" in r for r in results_of(fake_model, len(fake_model.requests) - 1))
    assert (await agent_state(admin_api, workspace["id"]))["connected"] is True


async def test_interrupting_a_turn_cancels_its_mcp_call_and_ends_its_command_on_the_linked_agent(
    chat_server: ChatServer,
    admin_api: Api,
    fake_model: FakeOpenAI,
    start_linked_agent: Callable[..., LinkedAgent],
    slow_servers: dict[str, Any],
    tmp_path: Path,
) -> None:
    workspace = await new_linked_workspace(admin_api)
    agent = start_linked_agent(chat_server.url, workspace["agent_token"], slow_servers)
    await wait_ready(admin_api, workspace["id"], "slow")
    chat = await admin_api.post("/chats", {"workspace_id": workspace["id"]}, expect=201)
    marker = "workdock-interrupted-command"

    def commands() -> list[psutil.Process]:
        return agent.running_with(marker)

    async def sleep_started() -> bool:
        state = await agent_state(admin_api, workspace["id"])
        [slow] = [s for s in state["servers"] if s["name"] == "slow"]
        return any("sleep 120 started" in line for line in slow["stderr_tail"])

    fake_model.add(
        Reply(
            calls=[
                Call("slow__sleep", {"seconds": 120}),
                Call("execute", {"command": f"sleep 300; echo {marker}"}),
            ]
        ),
        Reply(text="not reached"),
    )
    await admin_api.post(f"/chats/{chat['id']}/messages", {"content": "wait a while"}, expect=202)
    await wait_until(sleep_started, timeout=30, message="the MCP call to run on the agent")
    await wait_until(commands, timeout=30, message="the command to run on the agent")

    # The user's interrupt, through the chat API: both calls end on the agent, not only in the turn.
    assert (await admin_api.post(f"/chats/{chat['id']}/interrupt"))["interrupted"] is True
    await admin_api.wait_status(chat["id"], "interrupted")
    [record] = await wait_until(
        lambda: cancellations(tmp_path), timeout=15, message="notifications/cancelled"
    )
    assert record["requestId"] is not None
    await wait_until(lambda: not commands(), timeout=15, message="the command's processes to end")
    messages = await admin_api.messages(chat["id"])
    assert messages[-1]["role"] == "assistant" and messages[-1]["parts"][0]["type"] == "interrupted"
    assert len(fake_model.requests) == 1  # the turn ended there: the model was not asked again
