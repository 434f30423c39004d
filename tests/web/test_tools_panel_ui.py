"""The Tools button and panel: counts without alarm for a failed server, red only when a whole
source is gone; search and collapsible groups by source and server."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.web.conftest import Browser, Stack
from tests.web.test_chat_ui import log_in

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


async def colour(locator) -> str:
    return await locator.evaluate("el => getComputedStyle(el).color")


async def theme_colour(page, variable: str) -> str:
    """A colour variable of the stylesheet as the browser computes it (``rgb(...)``)."""
    return await page.evaluate(
        """name => {
          const probe = document.createElement("b");
          probe.style.color = `var(${name})`;
          document.body.append(probe);
          const value = getComputedStyle(probe).color;
          probe.remove();
          return value;
        }""",
        variable,
    )


async def test_the_tools_button_counts_and_the_panel_groups_and_searches(
    browser: Browser, stack: Stack
) -> None:
    page = browser.page
    tools = (await stack.api.get(f"/chats/{await stack.new_chat('first')}/tools"))["tools"]
    workspace_tools = [t for t in tools if t["source"] == "workspace"]
    assert len(workspace_tools) > 5
    chat_id = await stack.new_chat("tools")
    await log_in(browser, stack)
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")

    # One optional server failed: counted, not alarmed (the button keeps the plain text colour).
    button = page.locator(".tools-button")
    await expect(button).to_have_attribute("data-failed", "1")
    await expect(button).to_have_attribute("data-ready", str(len(tools)))
    await expect(button).to_have_text(f"Tools{len(tools)}· 1 failed")
    await expect(button).not_to_have_class("has-failures")
    assert await colour(button) == await theme_colour(page, "--text")
    assert await colour(button.locator(".tools-failed")) != await theme_colour(page, "--bad")
    await expect(button).to_have_attribute("title", f"{len(tools)} tools ready · 1 failed: broken")

    await button.click()
    panel = page.locator(".tools-panel")
    await expect(panel.locator(".tools-summary")).to_have_text(f"{len(tools)} tools ready · 1 failed")
    workspace = panel.locator("details[data-source='workspace']")
    everything = workspace.locator(".tool-group[data-server='everything']")
    broken = workspace.locator(".tool-group[data-server='broken']")
    # Groups by server: the failed one open with its reason, the others closed with their counts.
    await expect(broken).to_have_attribute("open", "")
    await expect(broken.locator(".failure-text")).not_to_be_empty()
    await expect(everything).not_to_have_attribute("open", "")
    await expect(everything.locator("> summary .count")).to_have_text(str(len(workspace_tools)))
    await expect(workspace.locator("> summary .count")).to_have_text(str(len(workspace_tools)))
    await everything.locator("> summary").click()
    await expect(everything.locator("code")).to_have_count(len(workspace_tools))
    builtin = panel.locator("details[data-source='builtin']")
    await expect(builtin.locator("code", has_text="read_file")).to_be_visible()
    await builtin.locator("> summary").click()  # the whole source folds
    await expect(builtin.locator("code", has_text="read_file")).to_be_hidden()

    # Search: by name, description or server; what matches opens, the rest goes.
    search = panel.get_by_label("Search tools")
    await search.fill("ECHO")
    await expect(panel.locator("code")).to_have_text(["everything__echo"])
    await expect(builtin).to_have_count(0)
    await expect(everything.locator("> summary .count")).to_have_text(f"1 of {len(workspace_tools)}")
    await expect(panel.locator(".tools-summary")).to_contain_text("1 match")
    await search.fill("no tool is called this")
    await expect(panel.locator(".no-match")).to_have_text("No tool matches “no tool is called this”.")
    await search.fill("")
    # The groups are as the user left them, also after a refresh.
    await expect(builtin.locator("code", has_text="read_file")).to_be_hidden()
    await expect(everything.locator("code").first).to_be_visible()
    await panel.get_by_role("button", name="Refresh tools").click()
    await expect(page.locator(".toast")).to_have_text("Tools refreshed")
    await expect(builtin).not_to_have_attribute("open", "")
    await expect(everything).to_have_attribute("open", "")
    await browser.screenshot("tools-panel-groups")
    browser.assert_no_errors()


async def test_the_tools_button_turns_red_when_the_workspace_agent_is_gone(
    browser: Browser, stack: Stack
) -> None:
    page = browser.page
    gone = await stack.add_workspace("gone", agent_url="http://127.0.0.1:9")  # nothing listens there
    chat_id = await stack.new_chat("no agent", workspace_id=gone)
    await log_in(browser, stack)
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    button = page.locator(".tools-button")
    await expect(button).to_have_class("btn-ghost tools-button has-failures")
    # the built-ins (read_resource among them) and the admin servers: all but the workspace
    await expect(button).to_have_attribute("title", "8 tools ready · 1 failed: workspace agent")
    assert await colour(button) == await theme_colour(page, "--bad")
    await button.click()
    failure = page.locator(".tools-panel details[data-source='workspace'] .failure")
    await expect(failure).to_contain_text("Not available")
    await expect(failure.locator(".failure-text")).to_contain_text("workspace agent")
    browser.assert_no_errors()
