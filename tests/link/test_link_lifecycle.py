"""The link's life: the server restarts (the agent redials by itself), a second agent with the
same token takes over, the token is rotated, a wrong token, an agent token on the user API, and
a link that falls silent."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import turn_ended
from tests.link.conftest import agent_state, new_linked_workspace, wait_connected
from tests.support.helpers import wait_until
from tests.support.linked import LinkedAgent
from workdock.link.frames import PROTOCOL

pytestmark = pytest.mark.anyio


async def test_after_a_server_restart_the_agent_redials_by_itself(
    start_chat_server: Callable[..., ChatServer],
    fake_model: FakeOpenAI,
    start_linked_agent: Callable[..., LinkedAgent],
    workspace_dir: Path,
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    server = start_chat_server(subprocess_mode=True, data_dir=data_dir)
    api = Api(server.url, server.admin_token)
    try:
        workspace = await new_linked_workspace(api)
        agent = start_linked_agent(server.url, workspace["agent_token"], {})
        await wait_connected(api, workspace["id"])
        server.stop()
        await wait_until(
            lambda: "the link was lost" in agent.log(), timeout=15, message="the agent to see it"
        )
        await api.aclose()

        server = start_chat_server(subprocess_mode=True, data_dir=data_dir, port=server.port)
        api = Api(server.url, server.admin_token)
        await wait_connected(api, workspace["id"], timeout=60)  # backoff tops out at 30 s
        assert agent.running() and agent.log().count("INFO    linked to ") == 2
        chat = await api.post("/chats", {"workspace_id": workspace["id"]}, expect=201)
        fake_model.add(
            Reply(calls=[Call("write_file", {"path": "after.txt", "content": "ok"})]), Reply(text="ok")
        )
        await api.post(f"/chats/{chat['id']}/messages", {"content": "write"}, expect=202)
        await api.events(chat["id"], turn_ended())
        assert (workspace_dir / "after.txt").read_text() == "ok"
    finally:
        await api.aclose()


async def test_a_second_agent_with_the_same_token_replaces_the_first(
    chat_server: ChatServer, admin_api: Api, start_linked_agent: Callable[..., LinkedAgent]
) -> None:
    workspace = await new_linked_workspace(admin_api)
    first = start_linked_agent(chat_server.url, workspace["agent_token"], {})
    before = await wait_connected(admin_api, workspace["id"])
    second = start_linked_agent(chat_server.url, workspace["agent_token"], {})
    # The first one's link is closed; it says why and stops rather than fight for the workspace.
    assert await wait_until(lambda: first.process.poll() is not None, timeout=20, message="the first to stop")
    assert first.process.returncode == 1
    assert "another agent linked for this workspace" in first.log()
    state = await agent_state(admin_api, workspace["id"])
    assert state["connected"] and state["peer"] != before["peer"]
    assert state["connected_since"] > before["connected_since"]
    assert second.running()


async def test_a_rotated_token_closes_the_link_at_once_and_only_the_new_one_works(
    chat_server: ChatServer, admin_api: Api, start_linked_agent: Callable[..., LinkedAgent]
) -> None:
    workspace = await new_linked_workspace(admin_api)
    old_token = workspace["agent_token"]
    old = start_linked_agent(chat_server.url, old_token, {})
    await wait_connected(admin_api, workspace["id"])

    rotated = await admin_api.post(f"/workspaces/{workspace['id']}/agent-token")
    new_token = rotated["agent_token"]
    assert new_token.startswith("wdk_") and new_token != old_token
    assert rotated["connect"]["env"] == {"WORKDOCK_AGENT_TOKEN": new_token}
    assert old.wait_exit(20) == 2  # its link was closed, and a token the server refuses is final
    assert "revoked" in old.log()
    assert (await agent_state(admin_api, workspace["id"]))["connected"] is False

    again = start_linked_agent(chat_server.url, old_token, {})
    assert again.wait_exit(20) == 2
    new = start_linked_agent(chat_server.url, new_token, {})
    await wait_connected(admin_api, workspace["id"])
    assert new.running()
    # A direct workspace has no link token to rotate.
    direct = await admin_api.post(
        "/workspaces", {"name": "direct", "agent_url": "http://127.0.0.1:9", "agent_token": "t"}, expect=201
    )
    await admin_api.request("POST", f"/workspaces/{direct['id']}/agent-token", expect=409)


async def test_a_wrong_token_ends_the_agent_with_status_2(
    chat_server: ChatServer, admin_api: Api, start_linked_agent: Callable[..., LinkedAgent]
) -> None:
    for token in ("wdk_this-is-not-a-real-token", admin_api.token):  # nor does a user's API token link
        agent = start_linked_agent(chat_server.url, token, {})
        assert agent.wait_exit(20) == 2
        assert "the server refused this agent's token (HTTP 401)" in agent.log()


async def _dial_status(server_url: str, token: str) -> tuple[int, dict[str, str]]:
    """The status of one link handshake with ``token`` (101 when it links), and its headers."""
    url = server_url.replace("http://", "ws://") + "/api/v0/agents/link"
    try:
        async with connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            subprotocols=[PROTOCOL],  # type: ignore[list-item]
        ):
            return 101, {}
    except InvalidStatus as exc:
        return exc.response.status_code, dict(exc.response.headers)


async def test_token_guessing_on_the_link_is_answered_429_and_the_agent_links_after_the_block(
    start_chat_server: Callable[..., ChatServer], start_linked_agent: Callable[..., LinkedAgent]
) -> None:
    server = start_chat_server(env={"WORKDOCK_AUTH_FAILURE_LIMIT": "3", "WORKDOCK_AUTH_FAILURE_WINDOW": "4"})
    api = Api(server.url, server.admin_token)
    try:
        workspace = await new_linked_workspace(api)
        token = workspace["agent_token"]
        assert (await _dial_status(server.url, ""))[0] == 401  # no token at all is not a guess
        for _ in range(3):
            assert (await _dial_status(server.url, "wdk_guess"))[0] == 401
        status, headers = await _dial_status(server.url, token)
        assert status == 429  # the right token too, while the address is blocked
        assert 1 <= int(headers["retry-after"]) <= 4
        # An agent dialling now is not stopped by the 429: it redials, and links once the block ends.
        agent = start_linked_agent(server.url, token, {})

        async def linked() -> bool:
            answer = await api.http.get(f"/api/v0/workspaces/{workspace['id']}")
            return answer.status_code == 200 and answer.json()["agent"]["connected"]  # 429: still blocked

        await wait_until(linked, timeout=60, interval=0.2, message="the agent to link after the block")
        assert agent.process.poll() is None
    finally:
        await api.aclose()


async def test_an_agent_token_opens_no_other_route(chat_server: ChatServer, admin_api: Api) -> None:
    workspace = await new_linked_workspace(admin_api)
    token = workspace["agent_token"]
    routes = [
        ("GET", "/api/v0/me"),
        ("GET", "/api/v0/workspaces"),
        ("GET", f"/api/v0/workspaces/{workspace['id']}"),
        ("POST", f"/api/v0/workspaces/{workspace['id']}/agent-token"),
        ("DELETE", f"/api/v0/workspaces/{workspace['id']}"),
        ("GET", "/api/v0/chats"),
        ("POST", "/api/v0/chats"),
        ("GET", "/api/v0/mcp-servers"),
        ("GET", "/api/v0/users"),
        ("POST", "/api/v0/session"),
    ]
    async with httpx2.AsyncClient(base_url=chat_server.url) as http:
        for method, path in routes:
            for auth in ({"Authorization": f"Bearer {token}"}, {"Cookie": f"workdock_session={token}"}):
                response = await http.request(method, path, json={}, headers=auth)
                assert response.status_code == 401, (method, path, auth, response.text)
                assert set(response.json()) == {"message", "detail"}
        # The link endpoint itself is a WebSocket: a plain GET is not a link.
        response = await http.get("/api/v0/agents/link", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code in (400, 403, 404, 405, 426)
    # The token still works for its link after all those refusals, and the workspace is still there.
    assert (await admin_api.get(f"/workspaces/{workspace['id']}"))["connection"] == "link"


async def test_a_link_that_falls_silent_is_closed_and_redialled(
    start_chat_server: Callable[..., ChatServer],
    start_linked_agent: Callable[..., LinkedAgent],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    timings = {"WORKDOCK_LINK_PING_INTERVAL": "0.3", "WORKDOCK_LINK_SILENCE_LIMIT": "2"}
    for name, value in timings.items():
        monkeypatch.setenv(name, value)  # the server runs in this process
    server = start_chat_server()
    api = Api(server.url, server.admin_token)
    try:
        workspace = await new_linked_workspace(api)
        agent = start_linked_agent(server.url, workspace["agent_token"], {}, env=timings)
        await wait_connected(api, workspace["id"])
        os.kill(agent.pid, signal.SIGSTOP)  # alive, connected, and silent
        try:
            state = await wait_connected(api, workspace["id"], connected=False, timeout=20)
        finally:
            os.kill(agent.pid, signal.SIGCONT)
        assert state["last_error"] == "nothing arrived for 2 s (4408)"
        await wait_connected(api, workspace["id"], timeout=30)
        agent.wait_linked(2)
    finally:
        await api.aclose()


async def test_deleting_a_linked_workspace_closes_its_link(
    chat_server: ChatServer, admin_api: Api, start_linked_agent: Callable[..., LinkedAgent]
) -> None:
    workspace = await new_linked_workspace(admin_api)
    agent = start_linked_agent(chat_server.url, workspace["agent_token"], {})
    await wait_connected(admin_api, workspace["id"])
    await admin_api.delete(f"/workspaces/{workspace['id']}")
    assert agent.wait_exit(20) == 2
    await admin_api.get(f"/workspaces/{workspace['id']}", expect=404)
