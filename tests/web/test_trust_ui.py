"""Workspaces → a project server waiting for approval: its command line, Approve (one server, or
all from its file); a server waiting for an input: the field, whose value reaches the agent."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import FakeOpenAI
from tests.support.agent import TOKEN, RunningAgent, fixture_server
from tests.support.helpers import FIXTURES
from tests.web.conftest import Browser, Stack
from tests.web.test_chat_ui import log_in

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

SECRET = "typed-in-the-browser-0123"
VSCODE = """{
  "inputs": [
    {"type": "promptString", "id": "api-key", "description": "Service API key", "password": true},
    {"type": "pickString", "id": "region", "description": "Deployment region",
     "options": ["us-east-1", {"label": "Europe", "value": "eu-west-1"}], "default": "us-east-1"},
  ],
  "servers": {
    // needs the key before it can start
    "keyed": {"command": "%(python)s", "args": ["%(server)s"], "env": {"SERVICE_KEY": "${input:api-key}"}},
    "regional": {"command": "%(python)s", "args": ["%(server)s"], "env": {"REGION": "${input:region}"}},
  },
}
"""


@pytest.fixture
async def gated_stack(
    chat_server: ChatServer,
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    workspace_dir: Path,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    (workspace_dir / ".vscode").mkdir()
    (workspace_dir / ".vscode" / "mcp.json").write_text(
        VSCODE % {"python": sys.executable, "server": FIXTURES / "print_env.py"}
    )
    agent = start_agent(
        {"first": fixture_server("print_env.py"), "second": fixture_server("crash_during_call.py")},
        env={"WORKDOCK_TRUST": "0", "XDG_STATE_HOME": str(tmp_path / "state")},
    )
    agent.wait_state("first", "pending_approval")
    api = Api(chat_server.url, chat_server.admin_token)
    try:
        workspace = await api.post(
            "/workspaces", {"name": "gated", "agent_url": agent.url, "agent_token": TOKEN}, expect=201
        )
        yield Stack(chat_server, api, agent, fake_model, workspace["id"])
    finally:
        await api.aclose()


async def test_approve_in_the_web_ui_and_give_an_input(browser: Browser, gated_stack: Stack) -> None:
    page, stack = browser.page, gated_stack
    await log_in(browser, stack)
    await page.get_by_role("link", name="Workspaces").click()
    first = page.locator("details[data-server='first']")
    await expect(first).to_contain_text("pending_approval")
    await expect(first.locator("pre.launch")).to_contain_text("print_env.py")
    await browser.screenshot("trust-pending")

    await first.get_by_role("button", name="Approve", exact=True).click()
    await expect(first).to_contain_text("ready", timeout=30_000)
    assert stack.agent.server("second")["state"] == "pending_approval"  # one server only

    # "Approve all from this file" on the VS Code file's server; then it waits for its input.
    keyed = page.locator("details[data-server='keyed']")
    await keyed.get_by_role("button", name="Approve all from this file").click()
    await expect(keyed).to_contain_text("needs_input", timeout=30_000)
    field = keyed.get_by_label("Service API key")
    assert await field.get_attribute("type") == "password"
    await field.fill(SECRET)
    await keyed.get_by_role("button", name="Save").click()
    await expect(keyed).to_contain_text("ready", timeout=30_000)
    seen = stack.agent.call("keyed__environment")
    assert seen.status_code == 200 and SECRET in seen.text
    assert SECRET not in repr(await stack.api.get(f"/workspaces/{stack.workspace_id}"))
    assert SECRET not in stack.agent.log()

    # A pickString input is a choice among its options, its default chosen first.
    regional = page.locator("details[data-server='regional']")
    await expect(regional).to_contain_text("needs_input", timeout=30_000)
    choice = regional.get_by_label("Deployment region")
    assert await choice.input_value() == "us-east-1"
    await choice.select_option("eu-west-1")
    await regional.get_by_role("button", name="Save").click()
    await expect(regional).to_contain_text("ready", timeout=30_000)
    seen = stack.agent.call("regional__environment")
    assert seen.status_code == 200, seen.text
    assert json.loads(seen.json()["content"][0]["text"])["env"]["REGION"] == "eu-west-1"
    browser.assert_no_errors()


async def test_the_chat_api_passes_bad_requests_back_as_4xx(gated_stack: Stack) -> None:
    api, workspace = gated_stack.api, gated_stack.workspace_id
    unknown = await api.post(f"/workspaces/{workspace}/trust", {"servers": ["nope"]}, expect=404)
    assert "nope" in unknown["message"]
    await api.post(f"/workspaces/{workspace}/trust", {}, expect=400)
    await api.post(f"/workspaces/{workspace}/inputs", {"id": "api-key"}, expect=400)
    await api.post("/workspaces/no-such-workspace/trust", {"all": True}, expect=404)
