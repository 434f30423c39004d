"""Per-user OAuth sign-in to admin MCP servers, against the OAuth-protected fixture server
(`fixtures/servers/oauth_http.py`, whose authorize endpoint approves at once as a new account
each time and whose `whoami` tool answers the account of the token it was called with).

Two users sign in to one server as two accounts and each chat's calls reach it with its owner's
token; a user not signed in gets `needs_auth` and none of its tools; signing out and deleting
the server revoke and forget; no token shows in a response, a log line or the database; a
pre-registered client; wrong and replayed states are refused."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest
from sqlalchemy import select

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_cli_chat import run_chat
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.support.agent import RunningAgent
from tests.support.helpers import free_port, wait_until
from tests.support.oauth import OAuthServer, Spawn, follow
from workdock.chat.services import Services
from workdock.chat.store.models import McpServer, McpSignIn

# The terminal test starts a Python process per command: slow on a busy machine.
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]

CALLBACK = "/oauth/callback"


class Seen:
    """Every body the API answered, to look for tokens in afterwards."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def keep(self, value: Any) -> Any:
        self.bodies.append(json.dumps(value))
        return value


@pytest.fixture
def oauth(spawn: Spawn, tmp_path: Path) -> OAuthServer:
    return OAuthServer(spawn, tmp_path / "oauth-server.log")


@pytest.fixture
async def bob_api(chat_server: ChatServer, admin_api: Api) -> AsyncIterator[Api]:
    bob = await admin_api.post("/users", {"name": "bob"}, expect=201)
    token = (await admin_api.post(f"/users/{bob['id']}/tokens", {"name": "t"}, expect=201))["token"]
    api = Api(chat_server.url, token)
    yield api
    await api.aclose()


async def _rows(svc: Services) -> list[tuple[str, str, bool]]:
    async with svc.store.sessions() as session:
        rows = (await session.scalars(select(McpSignIn))).all()
    return [(row.user_id, row.record, row.signed_in) for row in rows]


async def _stored_oauth(svc: Services) -> list[Any]:
    async with svc.store.sessions() as session:
        return list((await session.scalars(select(McpServer.oauth))).all())


async def _bound(svc: Services, sessions: int) -> None:
    assert svc.admin.users is not None
    svc.admin.users.max_sessions = sessions
    await svc.admin.users.trim()


async def _session_count(svc: Services) -> int:
    assert svc.admin.users is not None
    return svc.admin.users.session_count


def own_failure(listing: dict[str, Any], slug: str) -> dict[str, Any] | None:
    return next((f for f in listing["failures"] if (f["source"], f["server"]) == ("admin", slug)), None)


async def sign_in(api: Api, server_id: str, seen: Seen | None = None) -> dict[str, str]:
    """What the browser does: start, open the authorization URL, come back to the callback."""
    started = await api.post(f"/mcp-servers/{server_id}/signin", {})
    if seen is not None:
        seen.keep(started)
    query = dict(parse_qsl(urlsplit(started["authorization_url"]).query))
    answer = follow(started["authorization_url"])
    done = await api.http.get(CALLBACK, params=answer)
    assert done.status_code == 303, done.text
    return query


async def offered(api: Api, chat_id: str, name: str) -> dict[str, Any] | None:
    listing = await api.get(f"/chats/{chat_id}/tools")
    return listing if name in {t["name"] for t in listing["tools"]} else None


async def whoami(api: Api, fake_model: FakeOpenAI, chat_id: str) -> dict[str, Any]:
    fake_model.add(Reply(calls=[Call("acct__whoami", {})]), Reply(text="done"))
    await api.post(f"/chats/{chat_id}/messages", {"content": "who am I?"}, expect=202)
    await api.events(chat_id, turn_ended())
    [result] = [p for m in await api.messages(chat_id) for p in m["parts"] if p["type"] == "tool-result"][-1:]
    assert not result["is_error"], result
    answer: dict[str, Any] = json.loads(result["content"][0]["text"])
    return answer


async def test_two_users_sign_in_as_two_accounts_and_each_chat_uses_its_owners_token(
    chat_server: ChatServer,
    admin_api: Api,
    bob_api: Api,
    fake_model: FakeOpenAI,
    start_agent: Any,
    oauth: OAuthServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    seen = Seen()
    agent: RunningAgent = start_agent({})
    created = await admin_api.post(
        "/mcp-servers", {"slug": "acct", "url": oauth.url, "auth": "oauth"}, expect=201
    )
    server_id = created["id"]
    assert created["auth"] == "oauth" and created["oauth"] is None
    assert created["status"]["state"] == "needs_auth"
    alice_chat = await new_chat(admin_api, agent.url)
    bob_chat = await new_chat(bob_api, agent.url)

    # Not signed in: the server is a failure that says to sign in, and none of its tools is offered.
    listing = seen.keep(await bob_api.get(f"/chats/{bob_chat}/tools"))
    failure = own_failure(listing, "acct")
    assert failure is not None and failure["server_id"] == server_id
    assert failure["error"].startswith("needs_auth: sign in to acct")
    assert not any(t["server"] == "acct" for t in listing["tools"])
    assert oauth.stats()["registrations"] == 0  # nobody signed in: no connection was made

    # Alice signs in; the URL is the SDK's flow for the chat server's callback.
    query = await sign_in(admin_api, server_id, seen)
    assert query["redirect_uri"] == chat_server.url + CALLBACK
    assert query["code_challenge_method"] == "S256" and query["resource"] == oauth.url
    # The log says how a chat user signs in (the agent's `workdock auth` does not apply here).
    assert "acct: needs sign-in (Sign in on its row in the tools panel, or /signin acct" in caplog.text
    assert "workdock auth" not in caplog.text
    await wait_until(
        lambda: offered(admin_api, alice_chat, "acct__whoami"), timeout=30, message="alice's tools"
    )
    listing = seen.keep(await bob_api.get(f"/chats/{bob_chat}/tools"))
    assert own_failure(listing, "acct") is not None  # Alice's sign-in is hers alone
    assert "acct__whoami" not in {t["name"] for t in listing["tools"]}
    mine = seen.keep(await admin_api.get("/mcp-servers"))["servers"][0]
    assert mine["status"]["state"] == "ready" and mine["status"]["tool_count"] == 2

    await sign_in(bob_api, server_id, seen)
    await wait_until(lambda: offered(bob_api, bob_chat, "acct__whoami"), timeout=30, message="bob's tools")

    alice = seen.keep(await whoami(admin_api, fake_model, alice_chat))
    bob = seen.keep(await whoami(bob_api, fake_model, bob_chat))
    assert alice["account"] == "account-1" and bob["account"] == "account-2"
    assert alice["client_id"] != bob["client_id"]  # each user's own registration
    stats = oauth.stats()
    assert stats["registrations"] == 2 and stats["code_grants"] == 2
    assert [c["account"] for c in stats["calls"]] == ["account-1", "account-2"]

    # Stored sealed: neither a token nor the registration is readable in the database.
    rows = await chat_server.call(_rows)
    assert len(rows) == 2 and all(signed for _, _, signed in rows)
    for _, record, _ in rows:
        assert record.startswith("wdsec1:")
        assert not any(token in record for token in stats["issued"])
        assert not any(client in record for client in stats["clients"])
    for message in (
        *seen.bodies,
        *(await admin_api.messages(alice_chat)),
        *(await bob_api.messages(bob_chat)),
    ):
        assert not any(token in str(message) for token in stats["issued"])
    assert not any(token in caplog.text for token in stats["issued"])

    # Sessions are bounded: the least recently used is closed, and opened again from the stored
    # tokens when its user's chat needs it, with no new sign-in.
    await chat_server.call(lambda svc: _bound(svc, 1))
    assert await chat_server.call(_session_count) == 1
    assert (await whoami(admin_api, fake_model, alice_chat))["account"] == "account-1"
    assert (await whoami(bob_api, fake_model, bob_chat))["account"] == "account-2"
    assert await chat_server.call(_session_count) == 1
    assert oauth.stats()["code_grants"] == 2

    # Bob signs out: his tokens are revoked at the server and forgotten; Alice stays signed in.
    await bob_api.delete(f"/mcp-servers/{server_id}/signin")
    revoked = set(oauth.stats()["revoked"])
    assert len(revoked) == 2 and revoked <= set(stats["issued"])
    listing = await bob_api.get(f"/chats/{bob_chat}/tools")
    assert own_failure(listing, "acct") is not None
    assert "acct__whoami" not in {t["name"] for t in listing["tools"]}
    assert await offered(admin_api, alice_chat, "acct__whoami") is not None
    assert len(await chat_server.call(_rows)) == 1

    # The server deleted: Alice's tokens are revoked too, and nothing of it is kept.
    await admin_api.delete(f"/mcp-servers/{server_id}")
    assert len(oauth.stats()["revoked"]) == 4
    assert await chat_server.call(_rows) == []
    listing = await admin_api.get(f"/chats/{alice_chat}/tools")
    assert not any(t["server"] == "acct" for t in listing["tools"]) and own_failure(listing, "acct") is None
    assert not any(token in caplog.text for token in oauth.stats()["issued"])  # nor when revoking


async def test_a_pre_registered_client_is_used_and_its_secret_never_shown(
    chat_server: ChatServer, admin_api: Api, start_agent: Any, oauth: OAuthServer
) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:  # registered by hand, as an admin would
        registered = await http.post(
            f"http://127.0.0.1:{oauth.port}/register",
            json={
                "redirect_uris": [chat_server.url + CALLBACK],
                "client_name": "our team",
                "scope": "read write",
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "client_secret_basic",
            },
        )
    assert registered.status_code == 201, registered.text
    client = registered.json()
    body = {"client_id": client["client_id"], "client_secret": client["client_secret"], "scopes": ["read"]}
    created = await admin_api.post(
        "/mcp-servers", {"slug": "acct", "url": oauth.url, "auth": "oauth", "oauth": body}, expect=201
    )
    assert created["oauth"] == {
        "client_id": client["client_id"],
        "client_secret_set": True,
        "scopes": ["read"],
    }
    assert client["client_secret"] not in json.dumps(await admin_api.get("/mcp-servers"))
    [stored] = await chat_server.call(_stored_oauth)
    assert stored["client_id"] == client["client_id"] and stored["client_secret"].startswith("wdsec1:")

    chat_id = await new_chat(admin_api, start_agent({}).url)
    query = await sign_in(admin_api, created["id"])
    assert query["client_id"] == client["client_id"] and query["scope"] == "read"
    await wait_until(lambda: offered(admin_api, chat_id, "acct__whoami"), timeout=30, message="the tools")
    assert oauth.stats()["registrations"] == 1  # the admin's alone: nothing registered dynamically

    # What does not fit is a clear 400 in the one error shape.
    for bad in (
        {"slug": "x1", "url": oauth.url, "oauth": body},  # a client without "auth": "oauth"
        {"slug": "x2", "url": oauth.url, "auth": "oauth", "headers": {"Authorization": "Bearer t"}},
        {"slug": "x3", "url": oauth.url, "auth": "oauth", "oauth": {"client_id": ""}},
        {"slug": "x4", "url": oauth.url, "auth": "sso"},
    ):
        refused = await admin_api.post("/mcp-servers", bad, expect=400)
        assert set(refused) == {"message", "detail"}


async def test_a_wrong_or_replayed_state_is_refused_and_the_sign_in_still_waits(
    chat_server: ChatServer, admin_api: Api, bob_api: Api, oauth: OAuthServer
) -> None:
    created = await admin_api.post(
        "/mcp-servers", {"slug": "acct", "url": oauth.url, "auth": "oauth"}, expect=201
    )
    plain = await admin_api.post("/mcp-servers", {"slug": "plain", "url": oauth.url}, expect=201)
    started = await admin_api.post(f"/mcp-servers/{created['id']}/signin", {})
    answer = follow(started["authorization_url"])
    http = admin_api.http
    forged = await http.get(CALLBACK, params={**answer, "state": "forged"})
    assert forged.status_code == 400 and "Not a sign-in in progress" in forged.text
    as_bob = await bob_api.http.get(CALLBACK, params=answer)
    assert as_bob.status_code == 400
    assert (await http.get(CALLBACK, params=answer)).status_code == 303
    replayed = await http.get(CALLBACK, params=answer)
    assert replayed.status_code == 400 and "used already" in replayed.text
    assert oauth.stats()["code_grants"] == 1

    # Signed in already, a shared server, no such server: 4xx in the one error shape.
    again = await admin_api.post(f"/mcp-servers/{created['id']}/signin", {}, expect=409)
    assert set(again) == {"message", "detail"} and "sign out first" in again["message"]
    await admin_api.post(f"/mcp-servers/{plain['id']}/signin", {}, expect=409)
    await admin_api.post("/mcp-servers/nope/signin", {}, expect=404)
    await bob_api.delete("/mcp-servers/nope/signin", expect=404)
    await bob_api.delete(f"/mcp-servers/{created['id']}/signin")  # not signed in: nothing to do
    gone = await admin_api.post(
        "/mcp-servers",
        {"slug": "gone", "url": f"http://127.0.0.1:{free_port()}/mcp", "auth": "oauth"},
        expect=201,
    )
    unreachable = await bob_api.post(f"/mcp-servers/{gone['id']}/signin", {}, expect=409)
    assert "gone cannot be reached" in unreachable["message"]


async def test_a_second_start_voids_the_first_link(admin_api: Api, oauth: OAuthServer) -> None:
    created = await admin_api.post(
        "/mcp-servers", {"slug": "acct", "url": oauth.url, "auth": "oauth"}, expect=201
    )
    first = await admin_api.post(f"/mcp-servers/{created['id']}/signin", {})
    second = await admin_api.post(f"/mcp-servers/{created['id']}/signin", {})
    assert first["authorization_url"] != second["authorization_url"]
    old = await admin_api.http.get(CALLBACK, params=follow(first["authorization_url"]))
    assert old.status_code == 400
    assert (await admin_api.http.get(CALLBACK, params=follow(second["authorization_url"]))).status_code == 303


async def test_workdock_chat_says_which_servers_need_a_sign_in_and_the_url_to_open(
    chat_server: ChatServer, admin_api: Api, start_agent: Any, oauth: OAuthServer
) -> None:
    await admin_api.post("/mcp-servers", {"slug": "acct", "url": oauth.url, "auth": "oauth"}, expect=201)
    chat_id = await new_chat(admin_api, start_agent({}).url)
    listed = run_chat(chat_server, "--chat", chat_id, "--message", "/signin")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "acct needs your own sign-in: type /signin acct" in listed.stdout
    assert "acct: needs_auth" in listed.stdout

    started = run_chat(chat_server, "--chat", chat_id, "--message", "/signin acct")
    assert started.returncode == 0, started.stdout + started.stderr
    shown = re.search(r"^(http://\S+/authorize\?\S+)$", started.stdout, re.MULTILINE)
    assert shown is not None, started.stdout
    done = await admin_api.http.get(CALLBACK, params=follow(shown.group(1)))
    assert done.status_code == 303, done.text
    signed = run_chat(chat_server, "--chat", chat_id, "--message", "/signin")
    assert "acct: signed in" in signed.stdout and "needs your own sign-in" not in signed.stdout

    out = run_chat(chat_server, "--chat", chat_id, "--message", "/signout acct")
    assert out.returncode == 0 and "signed out of acct" in out.stdout
    assert oauth.stats()["revocations"] == 2
    unknown = run_chat(chat_server, "--chat", chat_id, "--message", "/signin nope")
    assert unknown.returncode == 1 and "no admin server 'nope'" in unknown.stdout


async def test_a_short_lived_token_is_refreshed_and_stored_again_sealed(
    chat_server: ChatServer,
    admin_api: Api,
    fake_model: FakeOpenAI,
    start_agent: Any,
    spawn: Spawn,
    tmp_path: Path,
) -> None:
    oauth = OAuthServer(spawn, tmp_path / "oauth-short.log", token_seconds=2)
    created = await admin_api.post(
        "/mcp-servers", {"slug": "acct", "url": oauth.url, "auth": "oauth"}, expect=201
    )
    chat_id = await new_chat(admin_api, start_agent({}).url)
    await sign_in(admin_api, created["id"])
    await wait_until(lambda: offered(admin_api, chat_id, "acct__whoami"), timeout=30, message="the tools")
    [(_, before, _)] = await chat_server.call(_rows)

    async def refreshed() -> bool:
        assert (await whoami(admin_api, fake_model, chat_id))["account"] == "account-1"
        return bool(oauth.stats()["refresh_grants"])

    await wait_until(refreshed, timeout=60, message="the access token to be refreshed")
    stats = oauth.stats()
    assert stats["code_grants"] == 1  # refreshed, never signed in again
    [(_, after, signed)] = await chat_server.call(_rows)
    assert signed and after != before and after.startswith("wdsec1:")
    assert not any(token in after for token in stats["issued"])


async def test_a_server_added_while_a_users_session_is_open_signs_in_and_keeps_its_tokens(
    chat_server: ChatServer,
    admin_api: Api,
    start_agent: Any,
    oauth: OAuthServer,
    spawn: Spawn,
    tmp_path: Path,
) -> None:
    first = await admin_api.post(
        "/mcp-servers", {"slug": "acct", "url": oauth.url, "auth": "oauth"}, expect=201
    )
    chat_id = await new_chat(admin_api, start_agent({}).url)
    await sign_in(admin_api, first["id"])
    await wait_until(lambda: offered(admin_api, chat_id, "acct__whoami"), timeout=30, message="acct's tools")
    other = OAuthServer(spawn, tmp_path / "oauth-other.log")
    second = await admin_api.post(
        "/mcp-servers", {"slug": "more", "url": other.url, "auth": "oauth"}, expect=201
    )
    await sign_in(admin_api, second["id"])
    await wait_until(lambda: offered(admin_api, chat_id, "more__whoami"), timeout=30, message="more's tools")
    assert await offered(admin_api, chat_id, "acct__whoami") is not None
    assert [signed for _, _, signed in await chat_server.call(_rows)] == [True, True]
