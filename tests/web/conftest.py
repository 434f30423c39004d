"""Browser test harness: Debian's chromium driven by Playwright against the real stack.

The stack is the chat server (in a thread), a real `workdock agent` with server-everything and a
server that always fails, and the scripted fake model. All listen on 127.0.0.1 and are stopped by
the fixtures that started them. Screenshots go to tests/artifacts/web/.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright, expect

# The chat harness's fixtures, shared rather than copied (pytest finds fixtures imported here).
from tests.chat.conftest import (  # noqa: F401
    MODEL,
    Api,
    ChatServer,
    everything_stdio,
    fake_model,
    start_agent,
    start_chat_server,
)
from tests.chat.fake_openai import FakeOpenAI
from tests.conftest import TESTS, require
from tests.support.agent import TOKEN, RunningAgent

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
ARTIFACTS = TESTS / "artifacts" / "web"
TIMEOUT_MS = 20_000
expect.set_options(timeout=15_000)  # the machine may be busy: conditions, not speed, are under test

# A workspace server that can never start: it explains itself on stderr and exits.
BROKEN_SERVER = {
    "command": sys.executable,
    "args": ["-c", "import sys; print('broken: GITHUB_TOKEN is not set', file=sys.stderr); sys.exit(3)"],
}


# A second model with a long name, for the header at phone width.
LONG_MODEL = "openai:fake-model-with-a-long-name-2026-05-preview"


@pytest.fixture
def chat_server(start_chat_server: Callable[..., ChatServer]) -> ChatServer:
    return start_chat_server(env={"WORKDOCK_MODELS": f"{MODEL},{LONG_MODEL}"})


@dataclass
class Stack:
    server: ChatServer
    api: Api
    agent: RunningAgent
    fake: FakeOpenAI
    workspace_id: str

    async def login_url(self) -> str:
        me = await self.api.get("/me")
        return (await self.api.post(f"/users/{me['id']}/login-url"))["login_url"]

    async def new_chat(
        self, title: str | None = None, *, workspace_id: str | None = None, model: str | None = None
    ) -> str:
        body: dict[str, Any] = {"workspace_id": workspace_id or self.workspace_id}
        if title:
            body["title"] = title
        if model:
            body["model"] = model
        return (await self.api.post("/chats", body, expect=201))["id"]

    async def add_workspace(self, name: str, agent_url: str | None = None, **extra: Any) -> str:
        body = {"name": name, "agent_url": agent_url or self.agent.url, "agent_token": TOKEN, **extra}
        return (await self.api.post("/workspaces", body, expect=201))["id"]


@pytest.fixture
async def stack(
    chat_server: ChatServer,
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    everything_stdio: dict[str, Any],
) -> AsyncIterator[Stack]:
    agent = start_agent({"everything": everything_stdio, "broken": BROKEN_SERVER})
    agent.wait_state("everything", "ready", timeout=60)
    agent.wait_for(lambda: agent.server("broken")["state"] in ("failed", "restarting"), 30, "broken to fail")
    api = Api(chat_server.url, chat_server.admin_token)
    try:
        workspace = await api.post(
            "/workspaces", {"name": "demo-project", "agent_url": agent.url, "agent_token": TOKEN}, expect=201
        )
        yield Stack(chat_server, api, agent, fake_model, workspace["id"])
    finally:
        await api.aclose()


@dataclass
class Browser:
    """One chromium with a fresh profile; collects what the page logged as errors."""

    context: Any
    page: Any
    errors: list[str] = field(default_factory=list)

    async def screenshot(self, name: str, **kwargs: Any) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path), **kwargs)
        return path

    def assert_no_errors(self) -> None:
        assert not self.errors, "the page logged errors:\n" + "\n".join(self.errors)


@pytest.fixture
async def browser(tmp_path: Path, chat_server: ChatServer) -> AsyncIterator[Browser]:
    # Depends on the chat server so that it closes first: open event streams would otherwise
    # hold the server's shutdown.
    require(CHROMIUM.exists(), f"{CHROMIUM} is missing (Debian package chromium; scripts/test installs it)")
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 820},
            device_scale_factor=1,
            color_scheme="light",
            reduced_motion="reduce",
        )
        try:
            context.set_default_timeout(TIMEOUT_MS)
            page = context.pages[0] if context.pages else await context.new_page()
            result = Browser(context, page)

            def on_console(message: Any) -> None:
                # A 401 while logged out is how the app learns it must show the login page.
                if message.type == "error" and "status of 401" not in message.text:
                    result.errors.append(f"console: {message.text}")

            page.on("console", on_console)
            page.on("pageerror", lambda error: result.errors.append(f"page error: {error}"))
            yield result
        finally:
            await context.close()
