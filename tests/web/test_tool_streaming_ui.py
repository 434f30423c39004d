"""A running call's card in the browser: live output of `execute`, a progress bar, and a tool's
request for input as a form built from its schema, answered (and declined) from the page."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.chat.fake_openai import Call, Reply
from tests.web.conftest import Browser, Stack
from tests.web.test_chat_ui import log_in

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

LONG = "everything__trigger-long-running-operation"
ASK = "everything__trigger-elicitation-request"


async def test_live_output_and_progress_on_the_cards(
    browser: Browser, stack: Stack, workspace_dir: Path
) -> None:
    page = browser.page
    stack.fake.add(
        Reply(
            calls=[
                Call(LONG, {"duration": 30, "steps": 30}),
                Call(
                    "execute",
                    {"command": "echo live-line; while [ ! -f go ]; do sleep 0.05; done; echo after"},
                ),
            ]
        ),
        Reply(text="Both finished."),
    )
    chat_id = await stack.new_chat("streaming")
    await log_in(browser, stack)
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    await page.get_by_label("Message").fill("run both")
    await page.get_by_label("Message").press("Enter")

    execute = page.locator(".tool-card[data-tool='execute']")
    long = page.locator(f".tool-card[data-tool='{LONG}']")
    await execute.locator("summary").click()
    await long.locator("summary").click()
    # The command waits for a file the test has not made yet: what the card shows came while it ran.
    await expect(execute.locator(".live-output")).to_have_text("live-line\n")
    await expect(execute).to_have_attribute("data-state", "running")
    bar = long.locator(".tool-progress progress")
    await expect(bar).to_have_attribute("max", "100")
    await expect(bar).not_to_have_attribute("value", "0")
    await browser.screenshot("live-output-and-progress")
    # A reload replays the running turn: the output and the progress come back.
    await page.reload()
    await execute.locator("summary").click()
    await expect(execute.locator(".live-output")).to_have_text("live-line\n")
    await expect(long.locator(".tool-progress progress")).to_have_count(1)

    (workspace_dir / "go").write_text("")
    await expect(execute).to_have_attribute("data-state", "done")
    await expect(execute.locator(".terminal-output")).to_have_text("live-line\nafter\n")
    await page.get_by_role("button", name="Stop").click()  # the 30 s operation need not run out
    await expect(long).to_have_attribute("data-state", "error")
    browser.assert_no_errors()


async def test_a_request_for_input_is_a_form_answered_from_the_page(browser: Browser, stack: Stack) -> None:
    page = browser.page
    stack.fake.add(
        Reply(calls=[Call(ASK, {})]),
        Reply(text="Thanks for the details."),
        Reply(calls=[Call(ASK, {})]),
        Reply(text="Fine, no details."),
    )
    chat_id = await stack.new_chat("asking")
    await log_in(browser, stack)
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    await page.get_by_label("Message").fill("ask me things")
    await page.get_by_label("Message").press("Enter")

    card = page.locator(f".tool-card[data-tool='{ASK}']").first
    await expect(card).to_have_attribute("data-state", "asking")
    await expect(card.locator(".badge")).to_have_text("needs input")
    form = card.locator(".elicit-form")
    await expect(form).to_be_visible()  # the card opens itself: a question is never hidden
    await expect(form.locator(".elicit-message")).to_have_text(
        "Please provide inputs for the following fields:"
    )
    # built from the schema: required mark, types, enums and defaults
    name = form.locator("input[name='name']")
    await expect(form.locator(f"label[for='{await name.get_attribute('id')}'] .required")).to_have_count(1)
    await expect(form.locator("input[name='check']")).to_have_attribute("type", "checkbox")
    await expect(form.locator("input[name='integer']")).to_have_value("42")
    await expect(form.locator("input[name='email']")).to_have_attribute("type", "email")
    await expect(form.locator("select[name='untitledSingleSelectEnum']")).to_have_value("Monica")
    await expect(form.locator("select[name='titledSingleSelectEnum'] option:checked")).to_have_text(
        "Superman"
    )
    await browser.screenshot("elicitation-form")

    # A reload shows the same pending form (the stream replays the running turn).
    await page.reload()
    form = card.locator(".elicit-form")
    await expect(form).to_be_visible()
    await form.locator("input[name='name']").fill("Grace Hopper")
    await form.locator("input[name='check']").check()
    await form.get_by_role("button", name="Accept").click()
    await expect(card).to_have_attribute("data-state", "done")
    await expect(card.locator(".tool-result")).to_contain_text("Name: Grace Hopper")
    await expect(page.locator(".msg-assistant").last).to_contain_text("Thanks for the details.")

    await page.get_by_label("Message").fill("again")
    await page.get_by_label("Message").press("Enter")
    second = page.locator(f".tool-card[data-tool='{ASK}']").nth(1)
    await expect(second).to_have_attribute("data-state", "asking")
    await second.locator(".elicit-form").get_by_role("button", name="Decline").click()
    await expect(second.locator(".tool-result")).to_contain_text("declined")
    await expect(page.locator(".msg-assistant").last).to_contain_text("Fine, no details.")
    browser.assert_no_errors()
