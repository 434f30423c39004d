"""The composer's `@` menu (attach a resource) and `/` menu (run a prompt) in a real browser."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import pytest
from playwright.async_api import expect

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import FakeOpenAI, Reply
from tests.support.agent import TOKEN, RunningAgent, fixture_server
from tests.web.conftest import Browser, Stack

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


@pytest.fixture
async def fx_stack(
    chat_server: ChatServer, fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent]
) -> AsyncIterator[Stack]:
    agent = start_agent({"fx": fixture_server("offerings.py")})
    agent.wait_state("fx", "ready")
    api = Api(chat_server.url, chat_server.admin_token)
    try:
        workspace = await api.post(
            "/workspaces", {"name": "fx-project", "agent_url": agent.url, "agent_token": TOKEN}, expect=201
        )
        yield Stack(chat_server, api, agent, fake_model, workspace["id"])
    finally:
        await api.aclose()


def last_user_text(fake: FakeOpenAI) -> str:
    content = [m for m in fake.requests[-1]["messages"] if m["role"] == "user"][-1]["content"]
    return content if isinstance(content, str) else json.dumps(content)


async def open_chat(browser: Browser, stack: Stack) -> str:
    chat_id = await stack.new_chat("Resources")
    await browser.page.goto(await stack.login_url())
    await browser.page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    await expect(browser.page.get_by_label("Message")).to_be_visible()
    return chat_id


async def test_at_menu_filters_and_attaches_a_resource(browser: Browser, fx_stack: Stack) -> None:
    page = browser.page
    await open_chat(browser, fx_stack)
    fx_stack.fake.add(Reply(text="Got the document."))
    box = page.get_by_label("Message")
    await box.press_sequentially("Please read @")
    menu = page.locator(".composer-menu")
    await expect(menu).to_be_visible()
    await expect(menu.locator(".menu-item")).to_have_count(6)
    await box.press_sequentially("doc/3")  # filtered as one types
    await expect(menu.locator(".menu-item")).to_have_count(1)
    await expect(menu.locator(".menu-item .chip")).to_have_text("workspace · fx")
    await browser.screenshot("at-menu")
    await box.press("Enter")  # picks, does not send
    await expect(menu).to_be_hidden()
    await expect(page.locator(".attachment-chips .attachment-chip")).to_contain_text("fixture://doc/3")
    await expect(box).to_have_value("Please read ")
    await box.press("Enter")
    await expect(page.locator(".msg-assistant").last).to_contain_text("Got the document.")
    sent = last_user_text(fx_stack.fake)
    assert "Please read" in sent and "document 3" in sent
    await expect(page.locator(".msg-user .msg-attachments")).to_contain_text("@fixture://doc/3")
    await expect(page.locator(".attachment-chips")).to_be_hidden()
    # Escape closes the menu; removing a chip drops the attachment
    await box.press_sequentially("@blob")
    await expect(menu.locator(".menu-item")).to_have_count(1)
    await box.press("Escape")
    await expect(menu).to_be_hidden()
    browser.assert_no_errors()


async def test_slash_menu_runs_a_prompt_with_its_argument_form(browser: Browser, fx_stack: Stack) -> None:
    page = browser.page
    await open_chat(browser, fx_stack)
    fx_stack.fake.add(Reply(text="Hello back."))
    box = page.get_by_label("Message")
    await box.press_sequentially("/")
    menu = page.locator(".composer-menu")
    await expect(menu.locator(".menu-item")).to_have_count(2)
    await expect(menu.locator(".menu-item").first).to_contain_text("name*")
    await box.press_sequentially("gre")
    await expect(menu.locator(".menu-item")).to_have_count(1)
    await box.press("Enter")
    form = page.locator(".prompt-form")
    await expect(form).to_be_visible()
    await expect(form).to_contain_text("/fx__greet")
    await form.get_by_label("name").fill("Ada")
    await browser.screenshot("prompt-form")
    await form.get_by_role("button", name="Run prompt").click()
    await expect(form).to_be_hidden()
    await expect(page.locator(".msg-user").last).to_contain_text("Hello, Ada!")
    await expect(page.locator(".msg-user .msg-attachments").last).to_contain_text("/fx__greet")
    await expect(page.locator(".msg-assistant").last).to_contain_text("Hello back.")
    assert last_user_text(fx_stack.fake) == "Hello, Ada!"
    browser.assert_no_errors()
