"""The sidebar shows the newest page of chats and loads older ones on demand (GET /chats pages)."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.chat.conftest import Api, ChatServer
from tests.web.conftest import Browser

pytestmark = pytest.mark.anyio

PAGE = 50  # the sidebar's page (app.js CHAT_PAGE)


async def test_the_sidebar_loads_older_chats_a_page_at_a_time(
    chat_server: ChatServer, browser: Browser
) -> None:
    api = Api(chat_server.url, chat_server.admin_token)
    try:
        workspace = await api.post(
            "/workspaces", {"name": "w", "agent_url": "http://127.0.0.1:9", "agent_token": "t"}, expect=201
        )
        titles = [f"chat number {i}" for i in range(PAGE + 5)]
        for title in titles:
            await api.post("/chats", {"workspace_id": workspace["id"], "title": title}, expect=201)
        me = await api.get("/me")
        login = (await api.post(f"/users/{me['id']}/login-url"))["login_url"]
    finally:
        await api.aclose()

    page = browser.page
    await page.goto(login)
    links = page.locator(".chat-link")
    await expect(links).to_have_count(PAGE)
    await expect(links.first).to_contain_text(titles[-1])  # newest first
    await expect(page.get_by_text("chat number 0", exact=True)).to_have_count(0)
    await page.get_by_role("button", name="Older chats").click()
    await expect(links).to_have_count(PAGE + 5)
    await expect(links.last).to_contain_text("chat number 0")
    await expect(page.get_by_role("button", name="Older chats")).to_have_count(0)  # all are shown
    browser.assert_no_errors()
