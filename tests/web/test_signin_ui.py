"""Workspaces → a server that waits for an OAuth sign-in: "Sign in" takes the browser to its
authorization server (`fixtures/servers/oauth_http.py`, which approves at once and redirects),
back through the chat server's `/oauth/callback` to the workspaces page, where the server's row
goes from connecting to ready. A direct workspace; the linked one is in tests/link."""

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
async def oauth_stack(
    chat_server: ChatServer,
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    spawn: Spawn,
    tmp_path: Path,
) -> AsyncIterator[tuple[Stack, OAuthServer]]:
    oauth = OAuthServer(spawn, tmp_path / "oauth-server.log")
    agent = start_agent({"secure": {"url": oauth.url}}, env={"XDG_STATE_HOME": str(tmp_path / "state")})
    agent.wait_state("secure", "needs_auth")
    api = Api(chat_server.url, chat_server.admin_token)
    try:
        workspace = await api.post(
            "/workspaces", {"name": "hosted", "agent_url": agent.url, "agent_token": TOKEN}, expect=201
        )
        yield Stack(chat_server, api, agent, fake_model, workspace["id"]), oauth
    finally:
        await api.aclose()


async def test_sign_in_from_the_server_row_through_to_ready(
    browser: Browser, oauth_stack: tuple[Stack, OAuthServer]
) -> None:
    (stack, oauth), page = oauth_stack, browser.page
    await log_in(browser, stack)
    await page.get_by_role("link", name="Workspaces").click()
    row = page.locator("details[data-server='secure']")
    await expect(row).to_contain_text("needs_auth")
    button = row.get_by_role("button", name="Sign in")
    await expect(button).to_be_visible()  # the row is open: what to do is shown
    await browser.screenshot("signin-needs-auth")

    # The authorization server's page, then the chat server's callback, then back here.
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url))
    callback = stack.server.url + "/oauth/callback?code="
    async with page.expect_request(lambda request: request.url.startswith(callback), timeout=30_000):
        await button.click()
    await page.wait_for_url(stack.server.url + "/#/workspaces", timeout=30_000)
    assert any(url.startswith(f"http://127.0.0.1:{oauth.port}/authorize?") for url in visited), visited
    await expect(row).to_contain_text("ready", timeout=30_000)
    await expect(row).to_contain_text("2 tools")
    await expect(row.get_by_role("button", name="Sign in")).to_have_count(0)
    await browser.screenshot("signin-ready")
    assert stack.agent.server("secure")["state"] == "ready"
    assert oauth.stats()["code_grants"] == 1
    browser.assert_no_errors()


async def test_a_used_callback_is_a_clear_page_and_the_app_still_works(
    browser: Browser, oauth_stack: tuple[Stack, OAuthServer]
) -> None:
    (stack, _), page = oauth_stack, browser.page
    await log_in(browser, stack)
    answer = await page.goto(stack.server.url + "/oauth/callback?code=x&state=never-started")
    assert answer is not None and answer.status == 400
    await expect(page.get_by_role("heading")).to_have_text("Not a sign-in in progress")
    await page.get_by_role("link", name="Back to the workspaces").click()
    await expect(page.locator("details[data-server='secure']")).to_contain_text("needs_auth")
    # The page keeps to the app's Content-Security-Policy (its own 400 is logged, as is a favicon).
    assert not [e for e in browser.errors if "Content Security Policy" in e or "page error" in e], (
        browser.errors
    )
