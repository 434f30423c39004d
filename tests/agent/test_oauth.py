"""Workspace servers behind OAuth: needs_auth, `workdock auth`, refresh, restart, revocation.

The server is `fixtures/servers/oauth_http.py`, a real streamable-HTTP MCP server with its own
authorization server (the `mcp` SDK's server-side auth), whose authorize endpoint approves at
once. The test plays the browser: it opens the authorization URL and follows the redirect.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest

from tests.support.agent import RunningAgent, write_config
from tests.support.helpers import wait_until_sync
from tests.support.oauth import OAuthServer, Spawn, follow


@pytest.fixture
def oauth_server(spawn: Spawn, tmp_path: Path) -> OAuthServer:
    return OAuthServer(spawn, tmp_path / "oauth-server.log")


@pytest.fixture
def state_home(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


def sign_in_through_api(agent: RunningAgent, name: str) -> None:
    """Complete the sign-in as the loopback callback would: hand code and state to the agent."""
    server = agent.wait_state(name, "needs_auth")
    answer = follow(server["authorization_url"])
    response = agent.http.post(f"/api/v0/mcp/servers/{name}/auth/callback", json=answer)
    assert response.status_code == 204, response.text
    agent.wait_state(name, "ready")


def assert_no_token_in(text: str, oauth_server: OAuthServer) -> None:
    issued = oauth_server.stats()["issued"]
    assert issued, "the fixture issued no tokens"
    for token in issued:
        assert token not in text


def test_needs_auth_then_workdock_auth_completes_it(
    start_agent: Callable[..., RunningAgent], oauth_server: OAuthServer, state_home: Path, tmp_path: Path
) -> None:
    agent = start_agent(
        {"secure": {"type": "http", "url": oauth_server.url}}, env={"XDG_STATE_HOME": str(state_home)}
    )
    server = agent.wait_state("secure", "needs_auth")
    url = server["authorization_url"]
    query = dict(parse_qsl(urlsplit(url).query))
    # Authorization code with PKCE (S256) and the resource indicator (RFC 8707), after registration.
    assert query["code_challenge_method"] == "S256" and query["code_challenge"]
    assert query["resource"] == oauth_server.url
    assert query["redirect_uri"].startswith("http://127.0.0.1:")
    assert oauth_server.stats()["registrations"] == 1
    assert "sign in" in server["error"] and "workdock auth secure" in server["error"]
    # Waiting for a person is not a failure: no retries pile up registrations or attempts.
    assert agent.call("secure__echo", {"text": "x"}).status_code in (404, 502)
    assert agent.server("secure")["restarts"] == 0

    cli = subprocess.Popen(
        [sys.executable, "-m", "workdock.cli", "auth", "secure", "--agent", agent.url, "--no-browser"],
        env={**os.environ, "WORKDOCK_AGENT_TOKEN": agent.http.headers["Authorization"].split()[1]},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert cli.stdout is not None
        printed = ""
        while "Waiting for the answer" not in printed:
            line = cli.stdout.readline()
            assert line, f"workdock auth ended early:\n{printed}"
            printed += line
        shown = re.search(r"^(http://\S+/authorize\?\S+)$", printed, re.MULTILINE)
        assert shown is not None, printed
        assert shown.group(1) == url
        # The browser: the authorization server redirects to workdock auth's loopback callback.
        page = httpx2.get(url, follow_redirects=True, timeout=30)
        assert page.status_code == 200 and "Signed in" in page.text, page.text
        rest, _ = cli.communicate(timeout=60)
        printed += rest
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 0, printed
    assert "secure is signed in and ready (2 tools)" in printed
    assert agent.server("secure")["state"] == "ready"
    response = agent.call("secure__echo", {"text": "hello"})
    assert response.status_code == 200 and response.json()["content"][0]["text"] == "hello"

    # The tokens are stored sealed, readable by the owner only, and shown nowhere.
    stored = state_home / "workdock" / "oauth" / "secure.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert (state_home / "workdock" / "oauth").stat().st_mode & 0o777 == 0o700
    every_answer = agent.http.get("/api/v0/mcp/servers").text + agent.http.get("/api/v0/mcp/tools").text
    assert_no_token_in(stored.read_text() + every_answer + printed + agent.log(), oauth_server)


def test_callback_checks_state_and_what_is_waiting(
    start_agent: Callable[..., RunningAgent], oauth_server: OAuthServer, state_home: Path
) -> None:
    agent = start_agent(
        {"secure": {"url": oauth_server.url}, "plain": {"command": "true", "disabled": True}},
        env={"XDG_STATE_HOME": str(state_home)},
    )
    server = agent.wait_state("secure", "needs_auth")
    answer = follow(server["authorization_url"])
    path = "/api/v0/mcp/servers/{}/auth/callback"
    forged = agent.http.post(path.format("secure"), json={"code": answer["code"], "state": "forged"})
    assert forged.status_code == 400 and "state does not match" in forged.json()["message"]
    assert agent.server("secure")["state"] == "needs_auth"
    assert agent.http.post(path.format("nope"), json=answer).status_code == 404
    idle = agent.http.post(path.format("plain"), json=answer)
    assert idle.status_code == 409 and set(idle.json()) == {"message", "detail"}
    assert agent.http.post(path.format("secure"), json={"code": 3}).status_code == 400
    assert agent.http.post(path.format("secure"), json={"code": "x" * 5000, "state": "s"}).status_code == 400
    # The genuine answer still works after the bad ones.
    assert agent.http.post(path.format("secure"), json=answer).status_code == 204
    agent.wait_state("secure", "ready")


def test_refresh_after_expiry_restart_reuses_and_removal_revokes(
    start_agent: Callable[..., RunningAgent], spawn: Spawn, tmp_path: Path, state_home: Path
) -> None:
    oauth_server = OAuthServer(spawn, tmp_path / "short-tokens.log", token_seconds=2)
    servers = {"secure": {"url": oauth_server.url}}
    env = {"XDG_STATE_HOME": str(state_home)}
    agent = start_agent(servers, env=env)
    sign_in_through_api(agent, "secure")
    assert oauth_server.stats()["code_grants"] == 1

    # The token lives 2 s: calls go on working, on refreshed tokens, with no new sign-in.
    def refreshed() -> bool:
        response = agent.call("secure__echo", {"text": "later"})
        assert response.status_code == 200, response.text
        return bool(oauth_server.stats()["refresh_grants"] >= 1)

    wait_until_sync(refreshed, timeout=30, interval=0.5, message="a refresh grant")
    assert oauth_server.stats()["code_grants"] == 1
    assert agent.server("secure")["state"] == "ready"
    first_log = agent.log()
    agent.stop()

    # A restarted agent reuses the stored (and by now expired) token: it refreshes, never asks again.
    again = start_agent(None, env=env)
    again.wait_state("secure", "ready")
    response = again.call("secure__echo", {"text": "after restart"})
    assert response.status_code == 200, response.text
    stats = oauth_server.stats()
    assert stats["code_grants"] == 1 and stats["authorizations"] == 1 and stats["registrations"] == 1

    # Removed from the config: its tokens are revoked at the server and the stored sign-in is gone.
    write_config(again.workspace / ".mcp.json", {})
    wait_until_sync(
        lambda: oauth_server.stats()["revocations"] >= 1, timeout=20, message="the tokens to be revoked"
    )
    stored = state_home / "workdock" / "oauth" / "secure.json"
    wait_until_sync(lambda: not stored.exists(), timeout=10, message="the stored sign-in to be removed")
    assert_no_token_in(first_log + again.log(), oauth_server)


def test_auth_start_redirects_the_sign_in_elsewhere_and_workdock_auth_takes_it_back(
    start_agent: Callable[..., RunningAgent], oauth_server: OAuthServer, state_home: Path
) -> None:
    agent = start_agent(
        {"secure": {"url": oauth_server.url}, "plain": {"command": "true", "disabled": True}},
        env={"XDG_STATE_HOME": str(state_home)},
    )
    first = agent.wait_state("secure", "needs_auth")["authorization_url"]
    old = follow(first)  # a code for the first sign-in, kept for later
    start = "/api/v0/mcp/servers/{}/auth/start"
    web = "http://127.0.0.1:9/oauth/callback"  # a chat server's callback; the browser never gets there
    answer = agent.http.post(start.format("secure"), json={"redirect_uri": web}, timeout=60)
    assert answer.status_code == 200, answer.text
    url = answer.json()["authorization_url"]
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["redirect_uri"] == web and query["code_challenge_method"] == "S256"
    assert query["state"] != dict(parse_qsl(urlsplit(first).query))["state"]
    # The first client was registered for the loopback URI only: a new one carries both.
    assert oauth_server.stats()["registrations"] == 2
    assert agent.server("secure")["state"] == "needs_auth"
    assert agent.server("secure")["authorization_url"] == url
    # The first sign-in is void: its code and state are refused.
    stale = agent.http.post("/api/v0/mcp/servers/secure/auth/callback", json=old)
    assert stale.status_code == 400 and "state does not match" in stale.json()["message"]
    # The authorization server sends the code to the new redirect URI.
    redirected = httpx2.get(url, follow_redirects=False, timeout=10)
    assert redirected.status_code == 302 and redirected.headers["location"].startswith(web + "?")

    # Bad requests: each a 4xx in the one error shape.
    for body in ({"redirect_uri": "ftp://x/cb"}, {"redirect_uri": "/relative"}, {"redirect_uri": 3}):
        bad = agent.http.post(start.format("secure"), json=body)
        assert bad.status_code == 400 and set(bad.json()) == {"message", "detail"}, body
    fragment = agent.http.post(start.format("secure"), json={"redirect_uri": web + "#x"})
    assert fragment.status_code == 400 and "fragment" in fragment.json()["detail"]
    assert agent.http.post(start.format("nope"), json={}).status_code == 404
    idle = agent.http.post(start.format("plain"), json={"redirect_uri": web})
    assert idle.status_code == 409 and set(idle.json()) == {"message", "detail"}

    # `workdock auth` in a terminal takes the sign-in back to its loopback address and finishes it.
    cli = subprocess.Popen(
        [sys.executable, "-m", "workdock.cli", "auth", "secure", "--agent", agent.url, "--no-browser"],
        env={**os.environ, "WORKDOCK_AGENT_TOKEN": agent.http.headers["Authorization"].split()[1]},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert cli.stdout is not None
        printed = ""
        while "Waiting for the answer" not in printed:
            line = cli.stdout.readline()
            assert line, f"workdock auth ended early:\n{printed}"
            printed += line
        shown = re.search(r"^(http://\S+/authorize\?\S+)$", printed, re.MULTILINE)
        assert shown is not None, printed
        assert shown.group(1) != url  # started again, for this terminal's loopback callback
        assert urlsplit(dict(parse_qsl(urlsplit(shown.group(1)).query))["redirect_uri"]).path == "/callback"
        page = httpx2.get(shown.group(1), follow_redirects=True, timeout=30)
        assert page.status_code == 200 and "Signed in" in page.text, page.text
        rest, _ = cli.communicate(timeout=60)
        printed += rest
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 0, printed
    assert oauth_server.stats()["registrations"] == 2  # the second client knows both URIs
    assert agent.server("secure")["state"] == "ready"
    assert "Traceback" not in agent.log()
