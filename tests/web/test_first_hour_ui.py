"""What a new user meets in the browser in the first hour, with the official npm servers: a tool
result shown once, a broken `.mcp.json` explained, and the way back in after the login URL is used."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx2
import pytest
from playwright.async_api import expect

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.support.agent import TOKEN, RunningAgent, fixture_server, node_server
from tests.web.conftest import Browser, Stack
from tests.web.test_chat_ui import log_in

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

OBSERVATION = "wrote the first program in 1843"


@pytest.fixture
async def memory_stack(
    chat_server: ChatServer,
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    agent = start_agent(
        {
            "memory": node_server("memory", MEMORY_FILE_PATH=str(tmp_path / "memory.jsonl")),
            "kinds": fixture_server("content_kinds.py"),
        }
    )
    agent.wait_state("memory", "ready", timeout=60)
    agent.wait_state("kinds", "ready")
    api = Api(chat_server.url, chat_server.admin_token)
    try:
        workspace = await api.post(
            "/workspaces",
            {"name": "memory-project", "agent_url": agent.url, "agent_token": TOKEN},
            expect=201,
        )
        yield Stack(chat_server, api, agent, fake_model, workspace["id"])
    finally:
        await api.aclose()


async def test_a_tool_card_shows_the_result_once(browser: Browser, memory_stack: Stack) -> None:
    page, stack = browser.page, memory_stack
    entity = {"name": "Ada", "entityType": "person", "observations": [OBSERVATION]}
    stack.fake.add(
        Reply(
            calls=[
                Call("memory__create_entities", {"entities": [entity]}),
                Call("kinds__structured_summary", {}),
            ]
        ),
        Reply(text="noted"),
    )
    chat_id = await stack.new_chat("memory")
    await log_in(browser, stack)
    await page.goto(f"{stack.server.url}/#/chats/{chat_id}")
    await page.get_by_label("Message").fill("remember Ada")
    await page.get_by_label("Message").press("Enter")

    for reloaded in (False, True):
        card = page.locator(".tool-card[data-tool='memory__create_entities']")
        await expect(card).to_have_attribute("data-state", "done")
        await card.locator("summary").click()
        result = card.locator(".tool-result")
        await expect(result).to_contain_text(OBSERVATION)
        # The server sent the entities as text and as {"entities": ...}: one copy is shown.
        assert (await result.inner_text()).count(OBSERVATION) == 1
        assert json.loads(await result.locator("pre").first.inner_text()) == [entity]
        await expect(result).not_to_contain_text("Structured content")
        # A text that does not carry the data: the data shows under it, once.
        summary = page.locator(".tool-card[data-tool='kinds__structured_summary']")
        await summary.locator("summary").click()
        await expect(summary.locator(".tool-result pre.result-text").first).to_have_text(
            "a reading in celsius"
        )
        await expect(summary.locator(".tool-section-title.sub")).to_have_text("Structured content")
        data = json.loads(await summary.locator(".tool-result pre.json").inner_text())
        assert data == {"temperature": 21.5, "unit": "celsius"}
        if not reloaded:
            await browser.screenshot("result-once")
            await page.reload()
    browser.assert_no_errors()


async def test_the_workspaces_page_explains_a_broken_mcp_json(
    browser: Browser,
    chat_server: ChatServer,
    start_agent: Callable[..., RunningAgent],
    workspace_dir: Path,
    tmp_path: Path,
) -> None:
    page = browser.page
    edited = start_agent({"ok": fixture_server("crash_during_call.py")})
    edited.wait_state("ok", "ready")
    (workspace_dir / ".mcp.json").write_text('{"mcpServers": {"ok": {"command": "python",}}}')
    edited.wait_for(
        lambda: edited.http.get("/api/v0/mcp/servers").json()["config_files"][0]["state"] == "invalid",
        10,
        "the typo to be seen",
    )
    never = tmp_path / "never-valid"
    never.mkdir()
    (never / ".mcp.json").write_text('{"mcpServers": {"a": {"command": "x"} "b": {}}}')
    fresh = RunningAgent(never, tmp_path / "never-valid.log")
    api = Api(chat_server.url, chat_server.admin_token)
    try:
        for name, agent in (("edited", edited), ("never-valid", fresh)):
            body = {"name": name, "agent_url": agent.url, "agent_token": TOKEN}
            await api.post("/workspaces", body, expect=201)
        me = await api.get("/me")
        await page.goto((await api.post(f"/users/{me['id']}/login-url"))["login_url"])
        await page.goto(f"{chat_server.url}/#/workspaces")

        card = page.locator(".workspace-card", has=page.locator("h2", has_text="edited"))
        await expect(card).to_contain_text("1 of 1 MCP server ready")
        await expect(card.locator(".config-error")).to_contain_text("line 1, column 44")
        await expect(card.locator(".config-error")).to_contain_text("last good servers keep running (ok)")

        broken = page.locator(".workspace-card", has=page.locator("h2", has_text="never-valid"))
        await expect(broken.locator(".config-error")).to_contain_text("Expecting ',' delimiter")
        await expect(broken.locator(".config-error")).to_contain_text("declares no servers until it is fixed")
        await expect(broken).to_contain_text("a config file has an error")
        await expect(broken).not_to_contain_text("No MCP servers declared")
        await browser.screenshot("workspaces-broken-config")
    finally:
        await api.aclose()
        fresh.stop()
    browser.assert_no_errors()


async def test_a_used_login_link_says_how_to_get_a_new_one(browser: Browser, chat_server: ChatServer) -> None:
    page = browser.page
    api = Api(chat_server.url, chat_server.admin_token)
    try:
        me = await api.get("/me")
        url = (await api.post(f"/users/{me['id']}/login-url"))["login_url"]
    finally:
        await api.aclose()
    async with httpx2.AsyncClient(timeout=30) as someone:  # used elsewhere (not by this browser's cookies)
        assert (await someone.get(url)).status_code == 303
    await page.goto(url)
    await expect(page.locator(".login-card")).to_be_visible()
    await expect(page.locator(".login-error")).to_contain_text("used already or has expired")
    await expect(page.locator(".login-error")).to_contain_text("workdock login-url")
    await expect(page.locator(".login-help")).to_contain_text("workdock login-url")
    await expect(page.locator(".login-card")).to_contain_text("admin.token")
    await browser.screenshot("login-used-link")
    # A pasted token still logs in, and the address loses the used code.
    await page.locator("#login-secret").fill(chat_server.admin_token)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator(".user-name")).to_have_text("admin")
    assert page.url == chat_server.url + "/"
