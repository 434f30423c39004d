"""API endpoints the web UI needs: a token traded for a browser session, a workspace's server
details (stderr tail) and "refresh tools", and the static UI with its security headers."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.chat.conftest import Api, ChatServer
from tests.support.agent import TOKEN, RunningAgent, write_config

pytestmark = pytest.mark.anyio

LOUD_FAILURE = {
    "command": sys.executable,
    "args": ["-c", "import sys; print('no API key configured', file=sys.stderr); sys.exit(2)"],
}


async def test_a_token_becomes_a_session_cookie_and_logout_keeps_the_token(
    chat_server: ChatServer, admin_api: Api
) -> None:
    async with httpx2.AsyncClient(base_url=chat_server.url) as browser:
        refused = await browser.post("/api/v0/session", headers={"Authorization": "Bearer wd_wrong"})
        assert refused.status_code == 401
        answer = await browser.post(
            "/api/v0/session", headers={"Authorization": f"Bearer {chat_server.admin_token}"}
        )
        assert answer.status_code == 200 and answer.json()["user"]["name"] == "admin"
        cookie = answer.headers["set-cookie"]
        assert "workdock_session=" in cookie and "HttpOnly" in cookie
        session = browser.cookies["workdock_session"]
        assert session != chat_server.admin_token  # a session of its own, not the pasted token
        assert (await browser.get("/api/v0/me")).json()["name"] == "admin"
        assert (await browser.post("/api/v0/logout")).status_code == 204
    async with httpx2.AsyncClient(base_url=chat_server.url, cookies={"workdock_session": session}) as stale:
        assert (await stale.get("/api/v0/me")).status_code == 401
    assert (await admin_api.get("/me"))["name"] == "admin"  # the API token still works


async def test_workspace_status_has_stderr_tails_and_refresh_rereads_the_config(
    admin_api: Api, start_agent: Callable[..., RunningAgent], workspace_dir: Path
) -> None:
    agent = start_agent({"loud": LOUD_FAILURE})
    agent.wait_for(lambda: agent.server("loud")["stderr_tail"], 30, "the failing server's stderr")
    workspace = await admin_api.post(
        "/workspaces", {"name": "ws", "agent_url": agent.url, "agent_token": TOKEN}, expect=201
    )
    listed = await admin_api.get(f"/workspaces/{workspace['id']}")
    [loud] = listed["agent"]["servers"]
    assert loud["name"] == "loud" and loud["state"] != "ready" and loud["transport"] == "stdio"
    assert any("no API key configured" in line for line in loud["stderr_tail"])
    assert listed["agent"]["config_files"]

    # A server added to .mcp.json is there as soon as refresh answers (no waiting for the watcher).
    fixture = Path(__file__).parent.parent / "fixtures" / "servers" / "content_kinds.py"
    echo: dict[str, Any] = {"command": sys.executable, "args": [str(fixture)]}
    write_config(workspace_dir / ".mcp.json", {"loud": LOUD_FAILURE, "second": echo})
    refreshed = await admin_api.post(f"/workspaces/{workspace['id']}/refresh")
    assert {s["name"] for s in refreshed["agent"]["servers"]} == {"loud", "second"}

    other = Api(
        admin_api.base_url,
        (
            await admin_api.post(
                "/users/" + (await _new_user(admin_api)) + "/tokens", {"name": "t"}, expect=201
            )
        )["token"],
    )
    try:
        await other.post(f"/workspaces/{workspace['id']}/refresh", expect=404)
    finally:
        await other.aclose()


async def _new_user(api: Api) -> str:
    return (await api.post("/users", {"name": "someone"}, expect=201))["id"]


async def test_the_ui_is_served_with_a_csp_that_forbids_inline_script(chat_server: ChatServer) -> None:
    async with httpx2.AsyncClient(base_url=chat_server.url) as http:
        index = await http.get("/")
        assert index.status_code == 200
        assert index.headers["content-type"].startswith("text/html")
        csp = index.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "object-src 'none'" in csp
        assert '<script type="module" src="/assets/js/app.js">' in index.text
        script = await http.get("/assets/js/app.js")
        assert script.status_code == 200
        assert script.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
        assert script.headers["cache-control"] == "no-cache" and "content-security-policy" in script.headers
        assert (await http.get("/assets/styles.css")).headers["content-type"].startswith("text/css")
        assert (await http.get("/assets/nothing.js")).status_code == 404
        # The API is not shadowed by the UI.
        assert (await http.get("/api/v0/me")).status_code == 401
        assert (await http.get("/healthz")).json() == {"status": "ok"}
