"""The web UI's approvals: Approve / Deny with a reason on the tool card, "always allow in this
chat", the chat's policy picker, and the admin's default for new chats."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.chat.fake_openai import Call, Reply
from tests.conftest import wait_until
from tests.web.conftest import Browser, Stack
from tests.web.test_chat_ui import log_in

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


async def test_approve_deny_and_always_allow_on_the_tool_card(browser: Browser, stack: Stack) -> None:
    page = browser.page
    chat_id = await stack.new_chat("careful")
    await log_in(browser, stack)
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    await page.locator(".tools-button").click()  # the policy is set in the tools panel
    policy = page.get_by_label("Tool approval")
    await expect(policy).to_have_value("auto")
    await policy.select_option("ask")

    async def stored() -> bool:
        return bool((await stack.api.get(f"/chats/{chat_id}"))["approval_policy"] == "ask")

    await wait_until(stored, timeout=30, message="the policy to be stored")

    # Deny with a reason: the model reads it.
    stack.fake.add(Reply(calls=[Call("execute", {"command": "rm -rf build"})]), Reply(text="Understood."))
    await page.get_by_label("Message").fill("clean up")
    await page.get_by_label("Message").press("Enter")
    card = page.locator(".tool-card[data-tool='execute']")
    await expect(card).to_have_attribute("data-state", "approval")
    await expect(card.locator(".badge")).to_have_text("needs approval")
    await browser.screenshot("approval-pending")
    await card.get_by_label("Reason for denying").fill("keep the build")
    await card.get_by_role("button", name="Deny").click()
    await expect(card).to_have_attribute("data-state", "denied")
    await expect(page.locator(".msg-assistant").last).to_contain_text("Understood.")
    assert "keep the build" in str(stack.fake.tool_messages(1)[0]["content"])

    # Approve with "always": it runs, and the next call of that tool runs unasked.
    stack.fake.add(
        Reply(calls=[Call("write_file", {"path": "a.txt", "content": "a"})]),
        Reply(text="First written."),
        Reply(calls=[Call("write_file", {"path": "b.txt", "content": "b"})]),
        Reply(text="Second written."),
    )
    await page.get_by_label("Message").fill("write a")
    await page.get_by_label("Message").press("Enter")
    card = page.locator(".tool-card[data-tool='write_file']").first
    await expect(card).to_have_attribute("data-state", "approval")
    await card.get_by_label("Always allow write_file in this chat").check()
    await card.get_by_role("button", name="Approve").click()
    await expect(card).to_have_attribute("data-state", "done")
    await expect(page.locator(".msg-assistant").last).to_contain_text("First written.")
    await page.get_by_label("Message").fill("write b")
    await page.get_by_label("Message").press("Enter")
    await expect(page.locator(".msg-assistant").last).to_contain_text("Second written.")
    await expect(page.locator(".tool-card[data-tool='write_file']").last).to_have_attribute(
        "data-state", "done"
    )
    assert (await stack.api.get(f"/chats/{chat_id}"))["always_allow"] == ["write_file"]

    # A reload while a call waits shows the question again (from the stored pending call).
    stack.fake.add(Reply(calls=[Call("execute", {"command": "true"})]), Reply(text="Ran it."))
    await page.get_by_label("Message").fill("run true")
    await page.get_by_label("Message").press("Enter")
    waiting = page.locator(".tool-card[data-tool='execute']").last
    await expect(waiting).to_have_attribute("data-state", "approval")
    await page.reload()
    await expect(waiting).to_have_attribute("data-state", "approval")
    await waiting.get_by_role("button", name="Approve").click()
    await expect(page.locator(".msg-assistant").last).to_contain_text("Ran it.")
    browser.assert_no_errors()


async def test_the_admin_sets_the_default_policy_of_new_chats(browser: Browser, stack: Stack) -> None:
    page = browser.page
    await log_in(browser, stack)
    await page.goto(f"{stack.server.url}/#/workspaces")
    select = page.get_by_label("Tool approval of new chats")
    await expect(select).to_have_value("auto")
    await select.select_option("ask-all")
    await expect(page.get_by_text("New chats now use this approval policy.")).to_be_visible()
    assert await stack.api.get("/settings") == {"default_approval_policy": "ask-all"}
    chat_id = await stack.new_chat("strict")
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    await page.locator(".tools-button").click()
    await expect(page.get_by_label("Tool approval")).to_have_value("ask-all")
    browser.assert_no_errors()
