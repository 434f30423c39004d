"""A chat's tools panel → a per-user admin server (OAuth) that the user has not signed in to:
"Sign in" takes the browser to its authorization server (`fixtures/servers/oauth_http.py`, which
approves at once), back through the chat server's `/oauth/callback` to the same chat, whose
panel then lists the server's tools and offers "Sign out"; signing out brings "Sign in" back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import FakeOpenAI
from tests.support.agent import TOKEN, RunningAgent
from tests.support.oauth import OAuthServer, Spawn
from tests.web.conftest import Browser, Stack
from tests.web.test_chat_ui import log_in

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


@pytest.fixture
async def admin_oauth_stack(
    chat_server: ChatServer,
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    spawn: Spawn,
    tmp_path: Path,
) -> AsyncIterator[tuple[Stack, OAuthServer]]:
    oauth = OAuthServer(spawn, tmp_path / "oauth-server.log")
    agent = start_agent({})
    api = Api(chat_server.url, chat_server.admin_token)
    try:
        workspace = await api.post(
            "/workspaces", {"name": "hosted", "agent_url": agent.url, "agent_token": TOKEN}, expect=201
        )
        await api.post("/mcp-servers", {"slug": "acct", "url": oauth.url, "auth": "oauth"}, expect=201)
        yield Stack(chat_server, api, agent, fake_model, workspace["id"]), oauth
    finally:
        await api.aclose()


async def test_sign_in_and_out_of_a_per_user_server_from_the_tools_panel(
    browser: Browser, admin_oauth_stack: tuple[Stack, OAuthServer]
) -> None:
    (stack, oauth), page = admin_oauth_stack, browser.page
    chat_id = await stack.new_chat("Signed")
    await log_in(browser, stack)
    chat_url = f"{stack.server.url}/#/chats/{chat_id}"
    await page.goto(chat_url)
    await page.get_by_role("button", name="Tools").click()
    group = page.locator(".tools-panel .tool-group[data-server='acct']")
    await expect(group).to_contain_text("needs_auth")
    button = group.get_by_role("button", name="Sign in")
    await expect(button).to_be_visible()
    await browser.screenshot("admin-signin-needs-auth")

    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url))
    callback = stack.server.url + "/oauth/callback?code="
    async with page.expect_request(lambda request: request.url.startswith(callback), timeout=30_000):
        await button.click()
    await page.wait_for_url(chat_url, timeout=30_000)  # back where the sign-in was started
    assert any(url.startswith(f"http://127.0.0.1:{oauth.port}/authorize?") for url in visited), visited
    await page.get_by_role("button", name="Tools").click()
    await expect(group).to_contain_text("acct__whoami", timeout=30_000)
    await expect(group.get_by_role("button", name="Sign in")).to_have_count(0)
    sign_out = group.get_by_role("button", name="Sign out")
    await expect(sign_out).to_be_visible()
    await browser.screenshot("admin-signin-ready")
    assert oauth.stats()["code_grants"] == 1

    await sign_out.click()
    await expect(group.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)
    await expect(group).not_to_contain_text("acct__whoami")
    assert oauth.stats()["revocations"] == 2
    browser.assert_no_errors()
