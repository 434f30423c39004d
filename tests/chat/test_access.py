"""Users, tokens, login, per-user isolation and secrets never echoed."""

from __future__ import annotations

import httpx2
import pytest

from tests.chat.conftest import Api, ChatServer

pytestmark = pytest.mark.anyio

AGENT_SECRET = "agent-secret-value-123"
HEADER_SECRET = "Bearer header-secret-456"


async def test_first_start_admin_login_url_is_one_time_and_sets_a_session_cookie(
    admin_api: Api, chat_server: ChatServer
) -> None:
    me = await admin_api.get("/me")
    assert me["name"] == "admin" and me["is_admin"]
    url = (await admin_api.post(f"/users/{me['id']}/login-url"))["login_url"]
    assert url.startswith(chat_server.url + "/login?code=")
    async with httpx2.AsyncClient(base_url=chat_server.url) as browser:
        first = await browser.get(url)
        assert first.status_code == 303
        cookie = first.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        assert (await browser.get("/api/v0/me")).json()["name"] == "admin"  # cookie only, no header
        again = await browser.get(url)
        assert again.status_code == 401
        assert (await browser.post("/api/v0/logout")).status_code == 204
        browser.cookies.clear()
        assert (await browser.get("/api/v0/me")).status_code == 401


async def test_requests_without_a_valid_token_are_401(chat_server: ChatServer) -> None:
    async with httpx2.AsyncClient(base_url=chat_server.url) as anonymous:
        assert (await anonymous.get("/api/v0/chats")).status_code == 401
        response = await anonymous.get("/api/v0/chats", headers={"Authorization": "Bearer wd_nope"})
        assert response.status_code == 401
        assert set(response.json()) == {"message", "detail"}


async def test_two_users_cannot_see_each_others_chats_or_workspaces(
    admin_api: Api, chat_server: ChatServer
) -> None:
    bob = await admin_api.post("/users", {"name": "bob"}, expect=201)
    assert "login_url" in bob
    token = (await admin_api.post(f"/users/{bob['id']}/tokens", {"name": "laptop"}, expect=201))["token"]
    listed = await admin_api.get(f"/users/{bob['id']}/tokens")
    assert token not in str(listed) and listed["tokens"][0]["name"] == "laptop"
    bob_api = Api(chat_server.url, token)
    try:
        workspace = await admin_api.post(
            "/workspaces",
            {"name": "mine", "agent_url": "http://127.0.0.1:9", "agent_token": AGENT_SECRET},
            expect=201,
        )
        chat = await admin_api.post("/chats", {"workspace_id": workspace["id"]}, expect=201)
        assert (await bob_api.get("/workspaces"))["workspaces"] == []
        assert (await bob_api.get("/chats"))["chats"] == []
        for path in (
            f"/chats/{chat['id']}",
            f"/chats/{chat['id']}/messages",
            f"/chats/{chat['id']}/tools",
            f"/chats/{chat['id']}/stream",
            f"/workspaces/{workspace['id']}",
        ):
            await bob_api.get(path, expect=404)
        await bob_api.post(f"/chats/{chat['id']}/messages", {"content": "hi"}, expect=404)
        await bob_api.post(f"/chats/{chat['id']}/interrupt", expect=404)
        await bob_api.post("/chats", {"workspace_id": workspace["id"]}, expect=404)
        await bob_api.delete(f"/chats/{chat['id']}", expect=404)
        await bob_api.delete(f"/workspaces/{workspace['id']}", expect=404)
        # Admin-only resources are refused to a plain user.
        await bob_api.get("/users", expect=403)
        await bob_api.get("/mcp-servers", expect=403)
        # The admin's things are still there, and bob's own work as usual.
        assert (await admin_api.get(f"/chats/{chat['id']}"))["id"] == chat["id"]
        own = await bob_api.post(
            "/workspaces",
            {"name": "bob's", "agent_url": "http://127.0.0.1:9", "agent_token": "x"},
            expect=201,
        )
        assert [w["id"] for w in (await bob_api.get("/workspaces"))["workspaces"]] == [own["id"]]
        await admin_api.get(f"/workspaces/{own['id']}", expect=404)
    finally:
        await bob_api.aclose()


async def test_secrets_are_never_returned(admin_api: Api) -> None:
    workspace = await admin_api.post(
        "/workspaces",
        {"name": "w", "agent_url": "http://127.0.0.1:9", "agent_token": AGENT_SECRET},
        expect=201,
    )
    assert workspace["agent_token_set"] is True
    server = await admin_api.post(
        "/mcp-servers",
        {"slug": "docs", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": HEADER_SECRET}},
        expect=201,
    )
    assert server["headers_set"] == ["Authorization"]
    everything = [
        await admin_api.get("/workspaces"),
        await admin_api.get(f"/workspaces/{workspace['id']}"),
        await admin_api.get("/mcp-servers"),
        await admin_api.get(f"/mcp-servers/{server['id']}"),
        workspace,
        server,
    ]
    text = str(everything)
    assert AGENT_SECRET not in text and "header-secret" not in text


async def test_deleting_a_workspace_removes_it_and_its_chats(admin_api: Api) -> None:
    workspace = await admin_api.post(
        "/workspaces", {"name": "gone", "agent_url": "http://127.0.0.1:9", "agent_token": "t"}, expect=201
    )
    chat = await admin_api.post("/chats", {"workspace_id": workspace["id"]}, expect=201)
    await admin_api.get(f"/chats/{chat['id']}/tools")  # fills the server's caches for this workspace
    await admin_api.delete(f"/workspaces/{workspace['id']}", expect=204)
    await admin_api.get(f"/workspaces/{workspace['id']}", expect=404)
    await admin_api.get(f"/chats/{chat['id']}", expect=404)
    assert all(w["id"] != workspace["id"] for w in (await admin_api.get("/workspaces"))["workspaces"])
