"""The web UI's add-workspace flow for a linked agent, in a real browser: the connect command
with its copy button, then the card going connected and disconnected live as a real agent comes
and goes."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.async_api import expect

from tests.chat.conftest import Api, ChatServer
from tests.link.conftest import start_linked_agent  # noqa: F401
from tests.support.linked import LinkedAgent
from tests.web.conftest import Browser

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


async def test_adding_a_workspace_shows_its_connect_command_and_the_card_follows_the_agent(
    browser: Browser, chat_server: ChatServer, start_linked_agent: Callable[..., LinkedAgent]
) -> None:
    page = browser.page
    api = Api(chat_server.url, chat_server.admin_token)
    try:
        me = await api.get("/me")
        login = (await api.post(f"/users/{me['id']}/login-url"))["login_url"]
    finally:
        await api.aclose()
    await browser.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=chat_server.url)
    await page.goto(login)
    await page.get_by_role("link", name="Workspaces").click()

    # The direct form is still there, behind "Advanced", with the agent's default port.
    await page.get_by_text("Advanced: an agent this server can reach directly").click()
    await expect(page.get_by_label("Agent URL")).to_have_attribute("placeholder", "http://127.0.0.1:4571")
    await page.get_by_text("Advanced: an agent this server can reach directly").click()

    await page.get_by_label("Name").fill("team-box")
    await page.get_by_role("button", name="Add workspace").click()
    connect = page.locator(".connect")
    await expect(connect).to_be_visible()
    command = connect.locator("pre code")
    await expect(command).to_contain_text(f"workdock agent --server {chat_server.url} --dir .")
    line = await command.inner_text()
    match = re.fullmatch(
        r"WORKDOCK_AGENT_TOKEN=(wdk_\S+) workdock agent --server (\S+) --dir \.", line.strip()
    )
    assert match, line
    token, server_url = match.groups()
    await connect.get_by_role("button", name="Copy command").click()
    await expect(connect.get_by_role("button", name="Copied")).to_be_visible()
    assert await page.evaluate("navigator.clipboard.readText()") == line

    card = page.locator(".workspace-card", has_text="team-box")
    await expect(card).to_have_attribute("data-connected", "false")
    await expect(card.locator(".chip")).to_have_text("linked")
    await expect(card).to_contain_text("Agent not connected")
    await browser.screenshot("link-add-workspace")

    # Run what the page said; the card turns connected by itself (no reload).
    agent = start_linked_agent(server_url, token, {})
    await expect(card).to_have_attribute("data-connected", "true")
    await expect(card.locator(".link-state")).to_contain_text("Connected")
    await expect(card.locator(".link-state")).to_contain_text("from 127.0.0.1:")
    await expect(card).to_contain_text("No MCP servers declared")
    await browser.screenshot("link-connected")

    agent.kill9()
    await expect(card).to_have_attribute("data-connected", "false")
    await expect(card.locator(".link-state")).to_contain_text("Disconnected since")
    await expect(card).to_contain_text("the workspace agent is not connected, since")
    browser.assert_no_errors()
