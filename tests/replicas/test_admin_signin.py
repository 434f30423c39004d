"""A per-user sign-in to an admin server started on one replica and finished through another:
the callback is sent on to the replica whose connection waits for the code (it alone holds the
PKCE verifier), and the tokens, sealed in the database, serve the user on every replica; signing
out through one replica closes the user's connection on all."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chat.conftest import Api
from tests.replicas.conftest import Service, new_chat, new_workspace
from tests.support.agent import RunningAgent
from tests.support.helpers import wait_until
from tests.support.oauth import OAuthServer, Spawn, follow

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def offers(api: Api, chat_id: str, wanted: bool) -> bool:
    tools = (await api.get(f"/chats/{chat_id}/tools"))["tools"]
    return ("acct__whoami" in {t["name"] for t in tools}) is wanted


@pytest.mark.timeout(240)
async def test_a_sign_in_started_on_one_replica_is_finished_through_another(
    start_service: Callable[..., Service],
    start_agent: Callable[..., RunningAgent],
    spawn: Spawn,
    tmp_path: Path,
) -> None:
    service = start_service(2)
    a, b = service.apis
    oauth = OAuthServer(spawn, tmp_path / "oauth-server.log")
    created = await a.post("/mcp-servers", {"slug": "acct", "url": oauth.url, "auth": "oauth"}, expect=201)
    chat_id = await new_chat(a, await new_workspace(a, start_agent({}).url))

    started = await a.post(f"/mcp-servers/{created['id']}/signin", {})
    answer = follow(started["authorization_url"])
    done = await b.http.get("/oauth/callback", params=answer)  # a load balancer chose B
    assert done.status_code == 303, done.text
    replayed = await a.http.get("/oauth/callback", params=answer)
    assert replayed.status_code == 400

    for api in (a, b):  # B connects with the tokens A's flow stored: no second sign-in
        await wait_until(lambda api=api: offers(api, chat_id, True), timeout=30, message="the tools")
    stats = oauth.stats()
    assert stats["code_grants"] == 1 and stats["registrations"] == 1
    [row] = await service.fetch("SELECT record FROM mcp_signins")
    assert row["record"].startswith("wdsec1:") and not any(t in row["record"] for t in stats["issued"])

    await b.delete(f"/mcp-servers/{created['id']}/signin")
    await wait_until(lambda: offers(a, chat_id, False), timeout=10, message="A to close the connection")
    assert await service.fetch("SELECT record FROM mcp_signins") == []
    assert oauth.stats()["revocations"] == 2
