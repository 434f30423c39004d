"""The web UI with long turns, built-in tool views, failing servers, themes and phone width."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.chat.fake_openai import Call, Reply
from tests.web.conftest import Browser, Stack
from tests.web.test_chat_ui import log_in

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


async def test_interrupt_a_long_turn_after_a_reload_with_a_message_queued(
    browser: Browser, stack: Stack
) -> None:
    page = browser.page
    stack.fake.add(
        Reply(text="Running the slow command.", calls=[Call("execute", {"command": "sleep 60"})]),
        Reply(text="Picked up the queued message."),
    )
    chat_id = await stack.new_chat("slow one")
    await log_in(browser, stack)
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    await page.get_by_label("Message").fill("run the slow thing")
    await page.get_by_label("Message").press("Enter")

    card = page.locator(".tool-card[data-tool='execute']")
    await expect(card).to_have_attribute("data-state", "running")
    await expect(page.locator(".status-pill")).to_have_text("Running")

    # A reload in the middle of the turn shows the same running turn (history + replayed stream).
    await page.reload()
    await expect(card).to_have_attribute("data-state", "running")
    await expect(card.locator(".tool-badge, .badge")).to_have_text("running")
    await expect(page.locator(".msg-assistant")).to_contain_text("Running the slow command.")
    await card.locator("summary").click()
    await expect(card.locator(".terminal-command")).to_have_text("$ sleep 60")

    # Sent while the turn runs: shown as queued.
    await page.get_by_label("Message").fill("and then this")
    await page.get_by_label("Message").press("Enter")
    queued = page.locator(".msg.queued")
    await expect(queued).to_contain_text("and then this")
    await expect(queued.locator(".chip")).to_have_text("Queued")
    await browser.screenshot("running-turn")

    await page.get_by_role("button", name="Stop").click()
    await expect(card).to_have_attribute("data-state", "error")
    await expect(card.locator(".tool-result")).to_contain_text("interrupted")
    # The queued message then runs as the next turn.
    await expect(queued).to_have_count(0)
    await expect(page.locator(".msg-user .bubble").last).to_have_text("and then this")
    await expect(page.locator(".msg-assistant").last).to_contain_text("Picked up the queued message.")
    await expect(page.locator(".status-pill")).to_have_text("Ready")
    await expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    # The interrupted turn keeps its mark in the history, after the next turn and a reload too.
    mark = page.locator(".interrupted-mark")
    await expect(mark).to_have_text("Interrupted · Stopped by the user.")
    await page.reload()
    await expect(page.locator(".msg-assistant").last).to_contain_text("Picked up the queued message.")
    await expect(mark).to_have_text("Interrupted · Stopped by the user.")
    await expect(page.locator(".retry-button")).to_have_count(0)  # the last turn went well
    messages = await stack.api.messages(chat_id)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "user", "assistant"]
    assert messages[3]["parts"][0]["type"] == "interrupted"
    browser.assert_no_errors()


async def test_execute_and_edit_files_cards_in_light_dark_and_phone_width(
    browser: Browser, stack: Stack, workspace_dir: Path
) -> None:
    page = browser.page
    (workspace_dir / "greet.py").write_text("def greet(name):\n    return 'Hello ' + name\n")
    stack.fake.add(
        Reply(
            text="I'll check the tests, then fix the greeting.",
            calls=[
                Call("execute", {"command": "echo 3 passed; echo 1 failed >&2; exit 1"}),
                Call(
                    "edit_files",
                    {
                        "files": [
                            {
                                "path": "greet.py",
                                "edits": [
                                    {"old": "return 'Hello ' + name", "new": "return f'Hello, {name}!'"}
                                ],
                            }
                        ]
                    },
                ),
            ],
        ),
        Reply(
            text="Fixed `greet()`: it now uses an f-string.\n\n| file | change |\n|---|---|\n"
            "| greet.py | f-string |"
        ),
    )
    await log_in(browser, stack)
    await page.goto(f"{stack.server.url}/#/")
    await page.get_by_label("First message").fill("Fix the greeting and run the tests")
    await page.get_by_label("First message").press("Enter")

    run = page.locator(".tool-card[data-tool='execute']")
    edit = page.locator(".tool-card[data-tool='edit_files']")
    await expect(run).to_have_attribute("data-state", "error")  # exit code 1 is a failed call
    await expect(edit).to_have_attribute("data-state", "done")
    await expect(page.locator(".markdown table td").first).to_have_text("greet.py")
    await run.locator("summary").click()
    await edit.locator("summary").click()
    await expect(run.locator(".terminal-command")).to_have_text("$ echo 3 passed; echo 1 failed >&2; exit 1")
    await expect(run.locator(".terminal-output")).to_contain_text("3 passed")
    await expect(run.locator(".exit-code")).to_have_text("exit code 1")
    await expect(edit.locator(".diff-del")).to_contain_text("return 'Hello ' + name")
    await expect(edit.locator(".diff-add")).to_contain_text("return f'Hello, {name}!'")
    assert "f'Hello, {name}!'" in (workspace_dir / "greet.py").read_text()
    await expect(run.locator(".chip")).to_have_text("built-in")
    await browser.screenshot("tool-cards")
    await run.locator("summary").click()  # closed again: the overview shows the diff and the answer
    await page.locator(".scroller").evaluate("el => el.scrollTo(0, el.scrollHeight)")
    await browser.screenshot("overview")

    await page.emulate_media(color_scheme="dark")
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(22, 23, 26)"
    await browser.screenshot("tool-cards-dark")

    # Phone width: one column, the sidebar behind a menu button, no sideways scrolling.
    await page.set_viewport_size({"width": 390, "height": 844})
    await expect(page.locator(".sidebar")).not_to_be_in_viewport()
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await browser.screenshot("phone-dark")
    await page.get_by_role("button", name="Menu").click()
    await expect(page.locator(".sidebar")).to_be_in_viewport()
    await browser.screenshot("phone-sidebar-dark")
    await page.emulate_media(color_scheme="light")
    await page.locator(".scrim").click(position={"x": 370, "y": 400})
    await expect(page.locator(".sidebar")).not_to_be_in_viewport()
    await browser.screenshot("phone")
    browser.assert_no_errors()


async def test_a_failing_workspace_server_shows_in_the_tools_panel_and_the_workspaces_view(
    browser: Browser, stack: Stack
) -> None:
    page = browser.page
    chat_id = await stack.new_chat("tools")
    await log_in(browser, stack)
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    await page.get_by_role("button", name="Tools").click()

    panel = page.locator(".tools-panel")
    failure = panel.locator(".failure[data-server='broken']")
    await expect(failure).to_contain_text("broken")
    await expect(failure.locator(".failure-text")).not_to_be_empty()
    await expect(panel.locator("[data-source='builtin'] code", has_text="execute")).to_be_visible()
    echo = panel.locator("[data-source='workspace'] code", has_text="everything__echo")
    await expect(echo).to_be_hidden()  # one group per server, closed while there are several
    await panel.locator(".tool-group[data-server='everything'] > summary").click()
    await expect(echo).to_be_visible()
    await browser.screenshot("tools-panel")

    await panel.get_by_role("button", name="Refresh tools").click()
    await expect(page.locator(".toast")).to_have_text("Tools refreshed")
    await expect(panel.locator(".failure[data-server='broken']")).to_be_visible()

    await page.get_by_role("link", name="Workspaces").click()
    card = page.locator(".workspace-card")
    await expect(card.locator(".dot-ok").first).to_be_visible()
    await expect(card.locator("[data-server='everything'] .server-state")).to_have_text("ready")
    broken = card.locator("[data-server='broken']")
    await expect(broken.locator(".server-state")).not_to_have_text("ready")
    await broken.locator("summary").click()
    await expect(broken.locator(".stderr")).to_contain_text("broken: GITHUB_TOKEN is not set")
    await browser.screenshot("workspaces")
    await card.get_by_role("button", name="Refresh tools").click()
    await expect(page.locator(".toast").last).to_have_text("Refreshed demo-project")
    browser.assert_no_errors()


async def test_images_structured_content_long_text_and_chat_rename_and_delete(
    browser: Browser, stack: Stack
) -> None:
    page = browser.page
    long_message = "word " * 700
    stack.fake.add(
        Reply(
            calls=[
                Call("everything__get-tiny-image", {}),
                Call("everything__get-structured-content", {"location": "New York"}),
                Call("everything__echo", {"message": long_message}),
            ]
        ),
        Reply(text="Three results."),
    )
    chat_id = await stack.new_chat("rich results")
    await log_in(browser, stack)
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    await page.get_by_label("Message").fill("show me everything")
    await page.get_by_label("Message").press("Enter")
    await expect(page.locator(".msg-assistant").last).to_have_text("Three results.")

    image = page.locator(".tool-card[data-tool='everything__get-tiny-image']")
    await image.locator("summary").click()
    await expect(image.locator("img.tool-image")).to_be_visible()
    assert await image.locator("img.tool-image").evaluate("img => img.complete && img.naturalWidth > 0")

    structured = page.locator(".tool-card[data-tool='everything__get-structured-content']")
    await structured.locator("summary").click()
    # The server sends the data as JSON text and again as structured content: shown once.
    await expect(structured.locator(".tool-result pre.result-text")).to_contain_text("temperature")
    await expect(structured.locator(".tool-section-title.sub")).to_have_count(0)

    echo = page.locator(".tool-card[data-tool='everything__echo']")
    await echo.locator("summary").click()
    shown = echo.locator(".tool-result pre.result-text")
    assert len(await shown.text_content() or "") < len(long_message)
    await page.locator(".scroller").evaluate("el => el.scrollTo(0, 0)")
    await browser.screenshot("rich-results")
    await echo.locator(".tool-result").get_by_role("button", name=re.compile("Show more")).click()
    await expect(shown).to_have_text(f"Echo: {long_message}")

    await page.get_by_role("button", name="Rename chat").click()
    await page.get_by_label("Chat title").fill("Renamed chat")
    await page.get_by_label("Chat title").press("Enter")
    await expect(page.locator(".chat-title")).to_have_text("Renamed chat")
    await expect(page.locator(f".chat-link[data-chat-id='{chat_id}']")).to_contain_text("Renamed chat")
    assert (await stack.api.get(f"/chats/{chat_id}"))["title"] == "Renamed chat"

    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Delete chat").click()
    await expect(page.locator(f".chat-link[data-chat-id='{chat_id}']")).to_have_count(0)
    await expect(page.get_by_label("First message")).to_be_visible()
    await stack.api.get(f"/chats/{chat_id}", expect=404)
    browser.assert_no_errors()
