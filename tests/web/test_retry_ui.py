"""A way back after a bad turn: copy on messages, Retry on a turn that ended in an error or was
interrupted (the replaced attempt folded away, after a reload too), and workspace paths shown."""

from __future__ import annotations

import threading

import pytest
from playwright.async_api import expect

from tests.chat.fake_openai import Fail, Reply
from tests.conftest import wait_until
from tests.web.conftest import Browser, Stack
from tests.web.test_chat_ui import log_in

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

ANSWER = "The **fix** is in `checkout.py`:\n\n- retry once\n- then give up"


async def clipboard(browser: Browser) -> str:
    return await browser.page.evaluate("navigator.clipboard.readText()")


async def wait_for_clipboard(browser: Browser, text: str) -> None:
    async def holds() -> bool:
        return await clipboard(browser) == text

    await wait_until(holds, message=f"the clipboard to hold {text!r}")


async def test_copy_a_message_and_retry_a_turn_that_failed(browser: Browser, stack: Stack) -> None:
    page = browser.page
    await browser.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.server.url)
    stack.fake.add(Reply(text=ANSWER), Fail(400, "the provider is overloaded"))
    chat_id = await stack.new_chat("retry me")
    await log_in(browser, stack)
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    await page.get_by_label("Message").fill("where is the fix?")
    await page.get_by_label("Message").press("Enter")
    answer = page.locator(".msg-assistant").first
    await expect(answer.locator("strong")).to_have_text("fix")

    # Copy: the user's words, and the answer as its Markdown source.
    await page.locator(".msg-user").first.hover()
    await page.locator(".msg-user").first.get_by_role("button", name="Copy").click()
    await wait_for_clipboard(browser, "where is the fix?")
    await answer.hover()
    await answer.get_by_role("button", name="Copy").click()
    await expect(answer.get_by_role("button", name="Copied")).to_be_visible()
    await wait_for_clipboard(browser, ANSWER)

    await page.get_by_label("Message").fill("and the tests?")
    await page.get_by_label("Message").press("Enter")
    error = page.locator(".msg-error")
    await expect(error).to_contain_text("the provider is overloaded")
    await expect(page.locator(".status-pill")).to_have_text("Error")
    retry = page.get_by_role("button", name="Retry")
    await expect(page.locator(".retry-row")).to_contain_text("The last turn ended in an error.")
    await error.hover()
    await error.get_by_role("button", name="Copy").click()
    await wait_for_clipboard(browser, (await error.locator(".error-text").text_content()) or "")
    assert "the provider is overloaded" in await clipboard(browser)
    await browser.screenshot("turn-error")

    hold = threading.Event()
    stack.fake.add(Reply(text="The tests pass now.", hold=hold))
    try:
        await retry.click()
        await expect(page.get_by_role("button", name="Stop")).to_be_visible()
        await expect(retry).to_have_count(0)  # not while the retry runs
    finally:
        hold.set()
    await expect(page.locator(".msg-assistant").last).to_contain_text("The tests pass now.")
    await expect(page.locator(".status-pill")).to_have_text("Ready")
    # The failed attempt is folded, not gone; one question, one answer on show.
    await expect(error).to_have_count(0)
    attempt = page.locator(".attempt")
    await expect(attempt).to_contain_text("An earlier attempt was replaced by a retry.")
    await expect(page.locator(".msg-user")).to_have_count(2)
    await attempt.get_by_role("button", name="Show it").click()
    await expect(page.locator(".msg-error.is-superseded")).to_contain_text("the provider is overloaded")
    await browser.screenshot("turn-retried")
    await page.reload()
    await expect(page.locator(".msg-assistant").last).to_contain_text("The tests pass now.")
    await expect(page.locator(".attempt")).to_have_count(1)
    await expect(page.locator(".msg-error")).to_have_count(0)
    await expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    # What the model was sent for the retry: the question again, not the failed attempt.
    assert [m["content"] for m in stack.fake.requests[-1]["messages"] if m["role"] == "user"] == [
        "where is the fix?",
        "and the tests?",
    ]
    browser.assert_no_errors()


async def test_an_interrupted_turn_is_marked_and_can_be_retried(browser: Browser, stack: Stack) -> None:
    page = browser.page
    hold = threading.Event()
    stack.fake.add(Reply(text="never finished", hold=hold), Reply(text="Finished on retry."))
    chat_id = await stack.new_chat("stop me")
    await log_in(browser, stack)
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    try:
        await page.get_by_label("Message").fill("take your time")
        await page.get_by_label("Message").press("Enter")
        await wait_until(lambda: len(stack.fake.requests) == 1, timeout=30, message="the turn to start")
        await page.get_by_role("button", name="Stop").click()
        # The model's answer stays held until the interrupt has landed, or the turn could finish.
        await stack.api.wait_status(chat_id, "interrupted", timeout=30)
    finally:
        hold.set()
    mark = page.locator(".interrupted-mark")
    await expect(mark).to_have_text("Interrupted · Stopped by the user.")
    await expect(page.locator(".retry-row")).to_contain_text("The last turn was interrupted.")
    await page.reload()
    await expect(mark).to_have_text("Interrupted · Stopped by the user.")
    await page.get_by_role("button", name="Retry").click()
    await expect(page.locator(".msg-assistant").last).to_have_text("Finished on retry.")
    await expect(mark).to_have_count(0)  # it belonged to the replaced attempt
    await expect(page.locator(".attempt")).to_be_visible()
    browser.assert_no_errors()


async def test_a_workspace_shows_its_path_beside_its_name(browser: Browser, stack: Stack) -> None:
    page = browser.page
    workspace = await stack.add_workspace("portal", path="/home/dev/src/portal")
    chat_id = await stack.new_chat("where", workspace_id=workspace)
    await log_in(browser, stack)
    await page.locator("#new-chat-workspace").select_option(label="portal")
    await expect(page.locator(".picker-detail")).to_have_text("/home/dev/src/portal")
    await page.locator("#new-chat-workspace").select_option(label="demo-project")
    await expect(page.locator(".picker-detail")).to_have_text(stack.agent.url)  # no path: its agent
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    await expect(page.locator(".meta-workspace")).to_have_text("portal")
    await expect(page.locator(".meta-workspace")).to_have_attribute("title", "/home/dev/src/portal")
    await expect(page.locator(f".chat-link[data-chat-id='{chat_id}'] .chat-link-meta")).to_have_attribute(
        "title", "/home/dev/src/portal"
    )
    await page.get_by_role("link", name="Workspaces").click()
    card = page.locator(f".workspace-card[data-workspace-id='{workspace}']")
    await expect(card.locator("h2")).to_have_text("portal")
    await expect(card.locator(".workspace-path")).to_have_text("/home/dev/src/portal")
    browser.assert_no_errors()
