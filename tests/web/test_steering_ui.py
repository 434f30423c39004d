"""Steering in the browser: the tools panel shows what is loaded and what waits behind
find_tools, and turns tools, servers and sources off for the chat; the composer's model picker
switches the model the next message goes to."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.chat.fake_openai import Reply
from tests.chat.test_turn_e2e import turn_ended
from tests.support.helpers import wait_until
from tests.web.conftest import LONG_MODEL, Browser, Stack
from tests.web.test_chat_ui import log_in

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


async def test_the_tools_panel_shows_deferred_tools_and_toggles_them(browser: Browser, stack: Stack) -> None:
    page = browser.page
    chat_id = await stack.new_chat("steer")
    await stack.api.request("PATCH", f"/chats/{chat_id}", json={"tool_budget": {"max_tools": 10}})
    await log_in(browser, stack)
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    await page.locator(".tools-button").click()
    panel = page.locator(".tools-panel")
    await expect(panel.locator(".tools-summary")).to_contain_text("through find_tools")
    echo = panel.locator("li", has=page.locator("code", has_text="everything__echo"))
    await panel.locator(".tool-group[data-server='everything'] > summary .group-name").click()
    await expect(echo).to_have_attribute("data-state", "deferred")
    await expect(echo.locator(".chip-deferred")).to_have_text("via search")
    await expect(panel.locator("li[data-state='loaded'] code", has_text="read_file")).to_be_visible()
    await expect(panel.locator("code", has_text="find_tools")).to_be_visible()

    async def disabled() -> dict:
        return (await stack.api.get(f"/chats/{chat_id}"))["disabled_tools"]

    # A tool, then its server, then a whole source: each stored on the chat.
    await echo.get_by_label("Use this tool").uncheck()
    await expect(echo).to_have_attribute("data-state", "disabled")
    assert (await disabled())["tools"] == ["everything__echo"]
    await (
        panel.locator(".tool-group[data-server='everything'] > summary")
        .get_by_label("Use this server")
        .uncheck()
    )
    await wait_until(lambda: _servers_off(stack, chat_id), timeout=15, message="the server to be turned off")
    await expect(panel.locator("li[data-state='disabled'] code", has_text="everything__")).not_to_have_count(
        0
    )
    await panel.locator("details[data-source='builtin'] > summary").get_by_label("Use this source").uncheck()
    await expect(panel.locator("li[data-state='disabled'] code", has_text="read_file")).to_be_visible()
    assert (await disabled())["sources"] == ["builtin"]
    await expect(panel.locator(".tools-summary")).to_contain_text("off")

    # The next turn gets none of them.
    await stack.api.post(f"/chats/{chat_id}/messages", {"content": "hi"}, expect=202)
    await stack.api.events(chat_id, turn_ended())
    sent = stack.fake.tool_names(-1)
    assert "read_file" not in sent and not [n for n in sent if n.startswith("everything__")]

    await panel.locator("details[data-source='builtin'] > summary").get_by_label("Use this source").check()
    await expect(panel.locator("li[data-state='loaded'] code", has_text="read_file")).to_be_visible()
    assert (await disabled())["sources"] == []
    browser.assert_no_errors()


async def _servers_off(stack: Stack, chat_id: str) -> bool:
    chat = await stack.api.get(f"/chats/{chat_id}")
    return chat["disabled_tools"]["servers"] == [{"source": "workspace", "server": "everything"}]


async def test_the_model_picker_switches_the_model_for_the_next_message(
    browser: Browser, stack: Stack
) -> None:
    page = browser.page
    chat_id = await stack.new_chat("switch")
    await log_in(browser, stack)
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    picker = page.get_by_label("Next turn's model")
    await expect(picker).to_have_value("openai:fake-model")
    await picker.select_option(LONG_MODEL)
    await wait_until(lambda: _model_is(stack, chat_id, LONG_MODEL), timeout=15, message="the model switch")
    await expect(page.locator(".meta-model")).to_have_text(LONG_MODEL)
    await page.get_by_label("Message").fill("which model?")
    await page.get_by_label("Message").press("Enter")
    await wait_until(lambda: len(stack.fake.requests) == 1, timeout=30, message="the turn")
    assert stack.fake.requests[0]["model"] == LONG_MODEL.partition(":")[2]
    browser.assert_no_errors()


async def _model_is(stack: Stack, chat_id: str, model: str) -> bool:
    return (await stack.api.get(f"/chats/{chat_id}"))["model"] == model


async def test_editing_the_last_message_runs_the_turn_again(browser: Browser, stack: Stack) -> None:
    page = browser.page
    chat_id = await stack.new_chat("edit")
    stack.fake.add(Reply(text="an answer to the typo"))
    await stack.api.post(f"/chats/{chat_id}/messages", {"content": "waht is 2+2"}, expect=202)
    await stack.api.events(chat_id, turn_ended())
    await log_in(browser, stack)
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    user = page.locator(".msg-user", has_text="waht is 2+2")
    await user.hover()
    stack.fake.add(Reply(text="four"))
    await user.get_by_label("Edit").click()
    await page.get_by_label("Edited text").fill("what is 2+2")
    await page.get_by_role("button", name="Run again").click()
    await expect(page.locator(".msg-user:not(.is-superseded)")).to_have_text("what is 2+2")
    await expect(page.locator(".bubble, .msg-assistant").last).to_contain_text("four")
    # The replaced turn folds away; the model was sent the edited text only.
    await expect(page.locator(".msg.attempt")).to_be_visible()
    assert [m["content"] for m in stack.fake.requests[-1]["messages"] if m["role"] == "user"] == [
        "what is 2+2"
    ]
    browser.assert_no_errors()
