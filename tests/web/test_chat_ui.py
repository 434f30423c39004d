"""The web UI in a real browser against the real chat server, agent and MCP servers, with the
scripted fake model: login, streaming turns with tool cards, reload, safety, interrupt, queueing."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.chat.fake_openai import Call, Reply
from tests.web.conftest import Browser, Stack

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


async def log_in(browser: Browser, stack: Stack) -> None:
    await browser.page.goto(await stack.login_url())
    await expect(browser.page.locator(".sidebar")).to_be_visible()


async def test_login_with_the_one_time_url_or_a_token_and_logout(browser: Browser, stack: Stack) -> None:
    page = browser.page
    await page.goto(stack.server.url + "/")
    await expect(page.locator(".login-card")).to_be_visible()
    await browser.screenshot("login")

    url = await stack.login_url()
    await page.goto(url)
    await expect(page.locator(".user-name")).to_have_text("admin")
    assert page.url == stack.server.url + "/"
    cookies = await browser.context.cookies()
    assert [c["httpOnly"] for c in cookies if c["name"] == "workdock_session"] == [True]

    # The URL works once: a second visit is refused, and the app still shows the user logged in.
    second = await page.request.get(url, max_redirects=0)
    assert second.status == 401

    await page.get_by_role("button", name="Log out").click()
    await expect(page.locator(".login-card")).to_be_visible()
    await page.reload()
    await expect(page.locator(".login-card")).to_be_visible()

    # A wrong secret says so; an API token logs in.
    await page.locator("#login-secret").fill("wd_not-a-real-token")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator(".login-error")).to_contain_text("not valid")
    await page.locator("#login-secret").fill(stack.server.admin_token)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator(".user-name")).to_have_text("admin")
    await page.reload()
    await expect(page.locator(".user-name")).to_have_text("admin")
    # Logging out of a token session never revokes the token itself.
    await page.get_by_role("button", name="Log out").click()
    await expect(page.locator(".login-card")).to_be_visible()
    assert (await stack.api.get("/me"))["name"] == "admin"
    browser.assert_no_errors()


async def test_a_turn_streams_with_a_tool_card_and_a_reload_shows_the_same_history(
    browser: Browser, stack: Stack
) -> None:
    page = browser.page
    stack.fake.add(
        Reply(
            text="Let me ask the workspace.",
            calls=[Call("everything__echo", {"message": "hello from the browser"})],
        ),
        Reply(
            text="The **echo server** answered.\n\n```python\nprint('hello from the browser')\n```\n\n"
            "- first point\n- second point with `code`"
        ),
    )
    await log_in(browser, stack)

    # Start from the new-chat page: pick the workspace, type, Enter.
    await expect(page.locator("#new-chat-workspace option")).to_have_count(1)
    await page.get_by_label("First message").fill("Echo something, please")
    await page.get_by_label("First message").press("Enter")
    await expect(page).to_have_url(re.compile(r"#/chats/"))

    card = page.locator(".tool-card[data-tool='everything__echo']")
    await expect(card).to_have_attribute("data-state", "done")
    await expect(card.locator(".chip")).to_have_text("workspace · everything")
    await expect(card.locator(".tool-duration")).to_have_text(re.compile(r"\d+ ms|\d"))
    await card.locator("summary").click()
    await expect(card.locator(".tool-section pre.json")).to_contain_text(
        '"message": "hello from the browser"'
    )
    await expect(card.locator(".tool-result")).to_contain_text("Echo: hello from the browser")

    answer = page.locator(".msg-assistant").last
    await expect(answer.locator("strong")).to_have_text("echo server")
    await expect(answer.locator(".code-block code")).to_have_text("print('hello from the browser')")
    await expect(answer.locator("li")).to_have_count(2)
    await expect(page.locator(".status-pill")).to_have_text("Ready")
    await expect(page.locator(".chat-title")).to_have_text("Echo something, please")
    await expect(page.locator(".chat-link.active")).to_contain_text("Echo something, please")
    await browser.screenshot("chat")

    # Enter sends, Shift+Enter adds a line.
    composer = page.get_by_label("Message")
    await composer.fill("first line")
    await composer.press("Shift+Enter")
    await composer.type("second line")
    assert await composer.input_value() == "first line\nsecond line"

    # A reload rebuilds the same view from the history (cards come back closed).
    await card.locator("summary").click()
    texts_before = await page.locator(".transcript .msg").all_inner_texts()
    await page.reload()
    await expect(page.locator(".tool-card[data-tool='everything__echo']")).to_have_attribute(
        "data-state", "done"
    )
    await expect(page.locator(".msg-assistant").last.locator("strong")).to_have_text("echo server")
    assert await page.locator(".transcript .msg").all_inner_texts() == texts_before
    browser.assert_no_errors()


async def test_tool_results_and_model_text_cannot_inject_html(browser: Browser, stack: Stack) -> None:
    page = browser.page
    payload = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'
    stack.fake.add(
        Reply(
            text=f"Model says {payload} [click](javascript:alert(1))",
            calls=[Call("everything__echo", {"message": payload})],
        ),
        Reply(text=f"Done: {payload}"),
    )
    chat_id = await stack.new_chat("injection")
    await log_in(browser, stack)
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    await page.get_by_label("Message").fill(payload)
    await page.get_by_label("Message").press("Enter")

    card = page.locator(".tool-card[data-tool='everything__echo']")
    await expect(card).to_have_attribute("data-state", "done")
    await card.locator("summary").click()
    await expect(card.locator(".tool-result")).to_contain_text(f"Echo: {payload}")
    await expect(page.locator(".msg-assistant").last).to_contain_text(f"Done: {payload}")
    await expect(page.locator(".msg-user .bubble").first).to_have_text(payload)
    # Shown as text everywhere, run nowhere: no element came from the payload, no handler ran.
    assert await page.locator(".transcript img, .transcript script").count() == 0
    assert await page.locator(".transcript a[href^='javascript']").count() == 0
    assert await page.evaluate("window.__pwned") is None
    await page.reload()
    await expect(page.locator(".msg-assistant").last).to_contain_text(f"Done: {payload}")
    assert await page.locator(".transcript img, .transcript script").count() == 0
    assert await page.evaluate("window.__pwned") is None
    browser.assert_no_errors()
