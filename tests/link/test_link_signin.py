"""Signing in to a linked workspace's OAuth server through the chat server: the sign-in route
has the agent (over its link) start the sign-in for the chat server's `/oauth/callback`, which
takes the code only with the session of the user who started it, once, and hands it to the
agent. The OAuth server is `fixtures/servers/oauth_http.py` (its authorize endpoint approves at
once); the test plays the browser."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest

from tests.chat.conftest import Api, ChatServer
from tests.link.conftest import new_linked_workspace, wait_ready
from tests.support.helpers import wait_until
from tests.support.linked import LinkedAgent
from tests.support.oauth import OAuthServer, Spawn, follow

pytestmark = pytest.mark.anyio


async def _server_state(api: Api, workspace_id: str, name: str) -> str | None:
    servers = (await api.get(f"/workspaces/{workspace_id}"))["agent"]["servers"]
    return next((s["state"] for s in servers if s["name"] == name), None)


async def test_sign_in_through_the_chat_server_for_a_linked_workspace(
    chat_server: ChatServer,
    admin_api: Api,
    start_linked_agent: Callable[..., LinkedAgent],
    spawn: Spawn,
    tmp_path: Path,
) -> None:
    oauth = OAuthServer(spawn, tmp_path / "oauth-server.log")
    created = await new_linked_workspace(admin_api)
    workspace = created["id"]
    agent = start_linked_agent(
        chat_server.url,
        created["agent_token"],
        {"secure": {"url": oauth.url}, "plain": {"command": "true", "disabled": True}},
        env={"XDG_STATE_HOME": str(tmp_path / "state")},
    )
    agent.wait_linked()

    async def needs_auth() -> bool:
        return await _server_state(admin_api, workspace, "secure") == "needs_auth"

    await wait_until(needs_auth, timeout=30, message="secure to wait for sign-in")
    # The chat server does not pass the agent's own (loopback) authorization URL on.
    listed = await admin_api.get(f"/workspaces/{workspace}")
    assert "authorization_url" not in next(s for s in listed["agent"]["servers"] if s["name"] == "secure")

    sign_in = f"/workspaces/{workspace}/servers/secure/sign-in"
    started = await admin_api.post(sign_in, {})
    url = started["authorization_url"]
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["redirect_uri"] == chat_server.url + "/oauth/callback"
    answer = follow(url)  # the authorization server sends the browser to the chat server
    assert set(answer) == {"code", "state"} and answer["state"] == query["state"]

    # Someone else's session, no session, a forged state: refused, and the sign-in still waits.
    admin = admin_api.http
    other = await admin_api.post("/users", {"name": "mallory"}, expect=201)
    mallory_token = (await admin_api.post(f"/users/{other['id']}/tokens", {"name": "t"}, expect=201))["token"]
    callback = "/oauth/callback"
    as_other = await admin.get(callback, params=answer, headers={"Authorization": f"Bearer {mallory_token}"})
    assert as_other.status_code == 400 and "Not a sign-in in progress" in as_other.text
    async with httpx2.AsyncClient(base_url=chat_server.url, timeout=30) as anonymous:
        logged_out = await anonymous.get(callback, params=answer)
    assert logged_out.status_code == 401 and "Log in first" in logged_out.text
    forged = await admin.get(callback, params={**answer, "state": "forged"})
    assert forged.status_code == 400
    assert (await admin.get(callback)).status_code == 400  # neither code nor state
    assert await _server_state(admin_api, workspace, "secure") == "needs_auth"

    done = await admin.get(callback, params=answer)
    assert done.status_code == 303 and done.headers["location"] == "/#/workspaces"
    await wait_ready(admin_api, workspace, "secure")
    replayed = await admin.get(callback, params=answer)
    assert replayed.status_code == 400 and "used already" in replayed.text

    # What the agent refuses comes back as a 4xx in the one error shape.
    ready = await admin_api.post(sign_in, {}, expect=409)
    assert set(ready) == {"message", "detail"}
    await admin_api.post(f"/workspaces/{workspace}/servers/nope/sign-in", {}, expect=404)
    await admin_api.post(f"/workspaces/{workspace}/servers/plain/sign-in", {}, expect=409)
    await admin_api.post("/workspaces/no-such/servers/secure/sign-in", {}, expect=404)
    stats: dict[str, Any] = oauth.stats()
    assert stats["code_grants"] == 1
    assert not any(token in agent.log() for token in stats["issued"])
