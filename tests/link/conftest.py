"""Agent-link test harness: the chat server (in a thread, or as a child process), linked
workspaces made through its API, and real `workdock agent --server` processes dialling it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The chat harness's fixtures, shared rather than copied (pytest finds fixtures imported here).
from tests.chat.conftest import (  # noqa: F401
    Api,
    ChatServer,
    chat_server,
    everything_stdio,
    fake_model,
    start_chat_server,
)
from tests.support.agent import fixture_server, write_config
from tests.support.helpers import wait_until
from tests.support.linked import LinkedAgent


@pytest.fixture
async def admin_api(chat_server: ChatServer) -> AsyncIterator[Api]:
    api = Api(chat_server.url, chat_server.admin_token)
    yield api
    await api.aclose()


async def new_linked_workspace(api: Api, name: str = "linked") -> dict[str, Any]:
    """POST /workspaces {"name"}: the answer with its agent token and connect block."""
    return await api.post("/workspaces", {"name": name}, expect=201)


async def agent_state(api: Api, workspace_id: str) -> dict[str, Any]:
    agent: dict[str, Any] = (await api.get(f"/workspaces/{workspace_id}"))["agent"]
    return agent


async def wait_connected(
    api: Api, workspace_id: str, connected: bool = True, timeout: float = 30
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        state = await agent_state(api, workspace_id)
        return state if state["connected"] is connected else None

    state: dict[str, Any] = await wait_until(
        check,
        timeout=timeout,
        interval=0.05,
        message=f"the workspace to be {'' if connected else 'dis'}connected",
    )
    return state


async def wait_ready(api: Api, workspace_id: str, server: str, timeout: float = 30) -> dict[str, Any]:
    """Until the linked workspace's agent reports MCP server ``server`` ready."""

    async def check() -> dict[str, Any] | None:
        state = await agent_state(api, workspace_id)
        ready = any(s["name"] == server and s["state"] == "ready" for s in state["servers"])
        return state if ready else None

    state: dict[str, Any] = await wait_until(
        check, timeout=timeout, interval=0.05, message=f"{server} to be ready"
    )
    return state


@pytest.fixture
def slow_servers(tmp_path: Path) -> dict[str, Any]:
    """A .mcp.json with the slow_tool fixture (``slow__sleep``, ``slow__echo``); cancellations logged."""
    return {"slow": fixture_server("slow_tool.py", CANCEL_LOG=str(tmp_path / "cancelled.jsonl"))}


@pytest.fixture
def start_linked_agent(workspace_dir: Path, tmp_path: Path) -> Iterator[Callable[..., LinkedAgent]]:
    """Start `workdock agent --server URL` for the workspace dir with the given token (and .mcp.json)."""
    agents: list[LinkedAgent] = []

    def start(
        server_url: str, token: str, servers: dict[str, Any] | None = None, *args: str, **kwargs: Any
    ) -> LinkedAgent:
        if servers is not None:
            write_config(workspace_dir / ".mcp.json", servers)
        agent = LinkedAgent(
            workspace_dir, tmp_path / f"linked-agent-{len(agents)}.log", server_url, token, *args, **kwargs
        )
        agents.append(agent)
        return agent

    yield start
    failures: list[AssertionError] = []
    for agent in agents:
        try:
            agent.stop()
        except AssertionError as exc:
            failures.append(exc)
    if failures:
        raise failures[0]
