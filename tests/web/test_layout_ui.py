"""The web UI at phone width (boxes measured in the rendered page) and its contrast in both themes
(WCAG ratios computed from the computed styles of every rendered text, field edge and icon)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.chat.fake_openai import Call, Fail, Reply
from tests.web.audit import contrast_findings, overflow_findings
from tests.web.conftest import LONG_MODEL, Browser, Stack
from tests.web.test_chat_ui import log_in

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

PHONE = {"width": 390, "height": 844}
CARDS = ".tool-card, .chat-header, .msg, .composer-box, .content"
# An unknown tool with the longest name a model may use: its card must still hold its badge.
LONG_TOOL = "workspace_server_with_a_long_name__create_or_update_pull_request_x"
LONG_TITLE = "Why does the checkout page double-charge customers on a slow network?"


async def shown_characters(page, selector: str) -> float:
    """How many characters of the element's text fit in its width (at its own font)."""
    return await page.locator(selector).evaluate(
        """el => {
          const style = getComputedStyle(el);
          const ctx = document.createElement("canvas").getContext("2d");
          ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
          const text = el.textContent;
          return el.clientWidth / (ctx.measureText(text).width / text.length);
        }"""
    )


async def test_phone_width_nothing_overflows_and_the_header_keeps_its_title(
    browser: Browser, stack: Stack
) -> None:
    page = browser.page
    workspace = await stack.add_workspace("customer-portal-frontend-monorepo", path="/home/dev/src/portal")
    chat_id = await stack.new_chat(LONG_TITLE, workspace_id=workspace, model=LONG_MODEL)
    hold = threading.Event()
    stack.fake.add(
        Reply(
            text="Checking two things at once.",
            calls=[
                Call("everything__get-structured-content", {"location": "New York"}),
                Call(LONG_TOOL, {"title": "fix"}),
                Call("execute", {"command": "sleep 20 && echo a-very-long-line-of-output-" + "x" * 80}),
            ],
            hold=hold,
        ),
        Reply(
            text="Here is the fix:\n\n```python\n"
            + "charge_once(order_id, idempotency_key=request.headers['Idempotency-Key'])  # noqa\n"
            + "```\n\n| column | a rather long cell value |\n|---|---|\n| x | "
            + "y" * 90
            + " |"
        ),
    )
    await page.set_viewport_size(PHONE)
    await log_in(browser, stack)
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    await page.get_by_label("Message").fill("find the double charge")
    await page.get_by_label("Message").press("Enter")
    await expect(page.get_by_role("button", name="Stop")).to_be_visible()

    await browser.screenshot("phone-running")
    # The header: the title keeps room for more than a few characters; workspace and model end in
    # an ellipsis where they are cut, and say what they are in full on hover.
    assert await shown_characters(page, ".chat-title") >= 20
    meta = page.locator(".chat-meta")
    await expect(meta.locator(".meta-workspace")).to_have_attribute("title", "/home/dev/src/portal")
    await expect(meta.locator(".meta-model")).to_have_attribute("title", LONG_MODEL)
    assert await overflow_findings(page, CARDS) == []
    hold.set()

    execute = page.locator(".tool-card[data-tool='execute']")
    await expect(execute).to_have_attribute("data-state", "running")
    assert await overflow_findings(page, CARDS) == []  # running badges and live durations
    long_card = page.locator(f".tool-card[data-tool='{LONG_TOOL}']")
    await expect(long_card).to_have_attribute("data-state", "error")
    await expect(long_card.locator(".tool-name")).to_have_attribute("title", LONG_TOOL)
    await stack.api.post(f"/chats/{chat_id}/interrupt")
    await expect(page.locator(".interrupted-mark")).to_be_visible()
    await page.get_by_label("Message").fill("go on")
    await page.get_by_label("Message").press("Enter")
    await expect(page.locator(".markdown table")).to_be_visible()
    for card in (
        long_card,
        execute,
        page.locator(".tool-card[data-tool='everything__get-structured-content']"),
    ):
        await card.locator("summary").click()
    await expect(execute.locator(".terminal-command")).to_be_visible()
    findings = await overflow_findings(page, CARDS)
    await browser.screenshot("phone-cards")
    assert findings == []
    # Nothing scrolls sideways but what is meant to (code, tables, output).
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert await page.locator(".scroller").evaluate("el => el.scrollWidth <= el.clientWidth")

    await page.get_by_role("button", name="Tools").click()
    await expect(page.locator(".tools-panel .tool-group[data-server='broken']")).to_be_visible()
    assert await overflow_findings(page, ".tools-panel, .tool-group, .failure") == []
    await browser.screenshot("phone-tools")
    await page.get_by_role("button", name="Close tools").click()

    await page.get_by_role("button", name="Menu").click()
    await expect(page.locator(".sidebar")).to_be_in_viewport()
    assert await overflow_findings(page, ".sidebar, .chat-link") == []
    await page.get_by_role("link", name="Workspaces").click()
    await expect(page.locator(".workspace-card")).to_have_count(2)
    await expect(page.locator(".workspace-card [data-server='broken']").first).to_be_visible()
    assert await overflow_findings(page, ".workspace-card, .server-row, .content") == []
    await browser.screenshot("phone-workspaces")
    await page.goto(f"{stack.server.url}/#/")
    await expect(page.locator(".picker-detail")).not_to_be_empty()
    assert await overflow_findings(page, ".new-chat, .content") == []
    browser.assert_no_errors()


async def test_every_text_colour_pair_meets_wcag_in_both_themes(
    browser: Browser, stack: Stack, workspace_dir: Path
) -> None:
    page = browser.page
    findings: list[str] = []

    async def audit(screen: str, root: str = "body", *, screenshots: bool = True) -> None:
        await page.evaluate("document.activeElement && document.activeElement.blur()")
        for scheme in ("light", "dark"):
            await page.emulate_media(color_scheme=scheme)
            findings.extend(f"{screen} ({scheme}): {f}" for f in await contrast_findings(page, root))
            if screenshots:
                await browser.screenshot(f"contrast-{screen}-{scheme}")
        await page.emulate_media(color_scheme="light")

    # Logged out: the login card with its error.
    await page.goto(stack.server.url + "/")
    await page.locator("#login-secret").fill("wd_wrong")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator(".login-error")).to_be_visible()
    await audit("login")

    await log_in(browser, stack)
    await expect(page.locator("#new-chat-workspace option")).to_have_count(1)
    await page.get_by_label("First message").fill("a draft")  # a field's value, not its placeholder
    await audit("new-chat")

    # A turn with every kind of card and markdown, then a turn that fails.
    (workspace_dir / "greet.py").write_text("def greet(name):\n    return 'Hello ' + name\n")
    stack.fake.add(
        Reply(
            text="Looking around.",
            calls=[
                Call("everything__echo", {"message": "hi"}),
                Call("execute", {"command": "echo 1 failed; exit 1"}),
                Call(
                    "edit_files",
                    {"files": [{"path": "greet.py", "edits": [{"old": "'Hello '", "new": "'Hi '"}]}]},
                ),
            ],
        ),
        Reply(
            text="## Result\n\nFixed in `greet.py`, see [the docs](https://example.com/docs).\n\n"
            "> a quote\n\n- one\n- two\n\n```python\nprint('hi')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |"
        ),
        Fail(400, "the provider is overloaded"),
    )
    chat_id = await stack.new_chat("colours")
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    await page.get_by_label("Message").fill("look around")
    await page.get_by_label("Message").press("Enter")
    await expect(page.locator(".msg-assistant .markdown table")).to_be_visible()
    await page.get_by_label("Message").fill("and now?")
    await page.get_by_label("Message").press("Enter")
    await expect(page.locator(".retry-button")).to_be_visible()
    for card in await page.locator(".tool-card").all():
        await card.locator("summary").click()
    await expect(page.locator(".diff-add")).to_be_visible()
    await audit("chat-error")

    # Retry: the replaced attempt folded, then opened.
    stack.fake.add(Reply(text="Answered on the second try."))
    await page.locator(".retry-button").click()
    await expect(page.locator(".msg-assistant").last).to_contain_text("Answered on the second try.")
    await page.locator(".attempt button").click()
    await expect(page.locator(".msg-error.is-superseded")).to_be_visible()
    await audit("chat-retried")

    # A running turn with a queued message, then stopped: the running and interrupted states.
    hold = threading.Event()
    stack.fake.add(Reply(text="Running.", calls=[Call("execute", {"command": "sleep 30"})], hold=hold))
    try:
        await page.get_by_label("Message").fill("slow")
        await page.get_by_label("Message").press("Enter")
        await expect(page.locator(".status-running")).to_be_visible()
        await page.get_by_label("Message").fill("queued one")
        await page.get_by_label("Message").press("Enter")
        await expect(page.locator(".msg.queued")).to_be_visible()
        await audit("chat-running")
    finally:
        hold.set()
    await expect(page.locator(".tool-card[data-state='running']")).to_be_visible()
    await audit("chat-tool-running")
    await page.get_by_role("button", name="Stop").click()
    await expect(page.locator(".interrupted-mark")).to_be_visible()
    await expect(page.locator(".status-pill")).to_have_text("Ready")
    await audit("chat-interrupted")

    await page.get_by_role("button", name="Tools").click()
    await expect(page.locator(".tools-panel .failure[data-server='broken']")).to_be_visible()
    await page.get_by_label("Search tools").fill("e")
    await audit("tools-panel", ".tools-panel")
    await page.get_by_role("button", name="Refresh tools").click()
    toast = page.locator(".toast", has_text="Tools refreshed")
    await expect(toast).to_be_visible()
    await audit("toast", ".toasts", screenshots=False)  # quick: a toast goes after 4 s
    assert await toast.count() == 1, "the toast left before it was checked"

    await page.get_by_role("link", name="Workspaces").click()
    broken = page.locator(".workspace-card [data-server='broken']")
    await broken.locator("summary").click()
    await expect(broken.locator(".stderr")).to_be_visible()
    await audit("workspaces")

    # A chat deleted under the page: its banner, and the error toast of a message that was not sent.
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    await expect(page.locator(".msg-assistant").first).to_be_visible()
    await stack.api.delete(f"/chats/{chat_id}")
    await page.get_by_label("Message").fill("anyone there?")
    await page.get_by_label("Message").press("Enter")
    error_toast = page.locator(".toast-error", has_text="Not sent")
    await expect(error_toast).to_be_visible()
    await audit("error-toast", ".toasts", screenshots=False)
    assert await error_toast.count() == 1, "the toast left before it was checked"

    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto(f"{stack.server.url}/#/")
    await page.get_by_role("button", name="Menu").click()
    await expect(page.locator(".sidebar")).to_be_in_viewport()
    await audit("phone-sidebar")
    assert findings == [], "\n".join(findings)
