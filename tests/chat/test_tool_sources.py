"""Admin MCP servers (allow/deny lists, opt-out) and failing sources and tools."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.conftest import free_port, wait_until
from tests.support.agent import RunningAgent

pytestmark = pytest.mark.anyio


@pytest.fixture
def hung_server() -> Iterator[str]:
    """An HTTP 'server' that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/mcp"
    stop.set()
    thread.join(timeout=5)
    for conn in accepted:
        conn.close()
    listener.close()


async def tool_names(api: Api, chat_id: str, source: str) -> set[str]:
    tools = (await api.get(f"/chats/{chat_id}/tools"))["tools"]
    return {t["name"] for t in tools if t["source"] == source}


async def test_admin_server_tools_follow_allow_and_deny_lists(
    admin_api: Api, fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent], everything_http_url: str
) -> None:
    agent = start_agent({})
    chat_id = await new_chat(admin_api, agent.url)
    server = await admin_api.post(
        "/mcp-servers",
        {
            "slug": "ev",
            "url": everything_http_url,
            "allow_tools": ["echo", "get-sum"],
            "deny_tools": ["echo"],
        },
        expect=201,
    )
    # A non-empty allow list alone decides: the deny list does not apply.
    assert await wait_until(
        lambda: _has(admin_api, chat_id, "ev__echo"), timeout=30, message="the admin server's tools"
    )
    assert await tool_names(admin_api, chat_id, "admin") == {"ev__echo", "ev__get-sum"}

    await admin_api.request(
        "PATCH", f"/mcp-servers/{server['id']}", json={"allow_tools": [], "deny_tools": ["echo"]}
    )
    names = await wait_until(
        lambda: _names_if(
            admin_api, chat_id, lambda n: "ev__get-sum" in n and "ev__echo" not in n and len(n) > 2
        ),
        timeout=30,
        message="the deny list to apply",
    )
    assert "ev__get-tiny-image" in names

    # A turn calls an admin tool through the server's own MCP connection.
    fake_model.add(Reply(calls=[Call("ev__get-sum", {"a": 2, "b": 40})]), Reply(text="42"))
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "add"}, expect=202)
    await admin_api.events(chat_id, turn_ended())
    [result] = fake_model.tool_messages(1)
    assert "42" in str(result["content"])
    stored = (await admin_api.messages(chat_id))[1]["parts"][0]
    assert (stored["source"], stored["server"]) == ("admin", "ev")

    # A chat that opts out gets none; a disabled server is offered to nobody.
    workspace_id = (await admin_api.get(f"/chats/{chat_id}"))["workspace_id"]
    opted_out = await admin_api.post(
        "/chats", {"workspace_id": workspace_id, "use_admin_servers": False}, expect=201
    )
    assert await tool_names(admin_api, opted_out["id"], "admin") == set()
    await admin_api.request("PATCH", f"/mcp-servers/{server['id']}", json={"enabled": False})
    assert await tool_names(admin_api, chat_id, "admin") == set()


async def _has(api: Api, chat_id: str, name: str) -> bool:
    return name in await tool_names(api, chat_id, "admin")


async def _names_if(api: Api, chat_id: str, check: Callable[[set[str]], bool]) -> set[str] | None:
    names = await tool_names(api, chat_id, "admin")
    return names if check(names) else None


async def test_failing_sources_and_tools_become_error_results_and_the_turn_completes(
    start_chat_server: Callable[..., ChatServer],
    fake_model: FakeOpenAI,
    everything_http_url: str,
    hung_server: str,
) -> None:
    server = start_chat_server(tool_timeout=1.0)
    api = Api(server.url, server.admin_token)
    try:
        await api.post("/mcp-servers", {"slug": "ev", "url": everything_http_url}, expect=201)
        await api.post("/mcp-servers", {"slug": "hung", "url": hung_server}, expect=201)
        unreachable = f"http://127.0.0.1:{free_port()}"
        chat_id = await new_chat(api, unreachable)
        await wait_until(lambda: _has(api, chat_id, "ev__echo"), timeout=30, message="ev to be ready")

        tools = await api.get(f"/chats/{chat_id}/tools")
        failures = {(f["source"], f["server"]): f["error"] for f in tools["failures"]}
        assert "unreachable" in failures[("workspace", None)]
        assert ("admin", "hung") in failures
        assert {"read_file", "execute"} <= {t["name"] for t in tools["tools"] if t["source"] == "builtin"}

        fake_model.add(
            Reply(
                calls=[
                    Call("read_file", {"path": "x.txt"}),
                    Call("ev__trigger-long-running-operation", {"duration": 5, "steps": 5}),
                    Call("no_such_tool", {}),
                    Call("ev__echo", {"message": "still works"}),
                ]
            ),
            Reply(text="some tools failed"),
        )
        await api.post(f"/chats/{chat_id}/messages", {"content": "try everything"}, expect=202)
        events = await api.events(chat_id, turn_ended())
        statuses = [e["data"] for _, e in events if e["type"] == "data-status"]
        assert any(s.get("tool_failures") for s in statuses)
        assert statuses[-1]["status"] == "idle"
        errors = [e for _, e in events if e["type"] == "tool-output-error"]
        assert len(errors) == 3

        sent = {m["tool_call_id"]: str(m["content"]) for m in fake_model.tool_messages(1)}
        assert len(sent) == 4
        stored = (await api.messages(chat_id))[2]["parts"]
        by_name = {p["tool_name"]: p for p in stored}
        assert by_name["read_file"]["is_error"] and "unreachable" in _text(by_name["read_file"])
        slow = by_name["ev__trigger-long-running-operation"]
        assert slow["is_error"] and "tim" in _text(slow).lower()
        assert by_name["no_such_tool"]["is_error"] and "no tool named" in _text(by_name["no_such_tool"])
        assert not by_name["ev__echo"]["is_error"] and "still works" in _text(by_name["ev__echo"])
        assert (await api.get(f"/chats/{chat_id}"))["status"] == "idle"
    finally:
        await api.aclose()


def _text(part: dict[str, Any]) -> str:
    return "\n".join(c.get("text", "") for c in part["content"])
