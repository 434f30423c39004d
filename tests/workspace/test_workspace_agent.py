"""The workspace operations inside the real agent (`workdock agent`), started as a user starts it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.agent import RunningAgent
from support.processes import group_members


@pytest.fixture
def agents() -> Iterator[list[RunningAgent]]:
    started: list[RunningAgent] = []
    yield started
    for agent in started:
        agent.stop()  # fails if anything the agent started outlived it


def start(agents: list[RunningAgent], root: Path, *args: str) -> RunningAgent:
    agent = RunningAgent(root, root.parent / f"agent-{len(agents)}.log", *args)
    agents.append(agent)
    return agent


def test_the_agent_serves_them_and_ends_background_processes_when_it_ends(
    agents: list[RunningAgent], root: Path
) -> None:
    agent = start(agents, root)
    written = agent.http.post("/api/v0/fs/write", json={"path": "notes/a.txt", "content": "hello\n"})
    assert written.status_code == 200, written.text
    read = agent.http.post("/api/v0/fs/read", json={"path": "notes/a.txt"})
    assert read.json()["content"] == "hello\n"
    ran = agent.http.post("/api/v0/exec", json={"command": "cat notes/a.txt"})
    assert ran.json()["output"] == "hello\n"
    assert "/api/v0/exec" in agent.http.get("/openapi.json").json()["paths"]

    started = agent.http.post("/api/v0/exec", json={"command": "sleep 300 & sleep 300", "background": True})
    process_id = started.json()["process_id"]
    [info] = agent.http.get("/api/v0/processes").json()["processes"]
    assert info["id"] == process_id and info["running"] is True
    assert group_members(info["pid"])

    agents.remove(agent)
    took = agent.stop()
    assert took < 10
    assert group_members(info["pid"]) == []


def test_no_workspace_ops_leaves_them_unmounted(agents: list[RunningAgent], root: Path) -> None:
    agent = start(agents, root, "--no-workspace-ops")
    for method, path, body in [
        ("POST", "/api/v0/fs/read", {"path": "x"}),
        ("POST", "/api/v0/fs/write", {"path": "x", "content": "x"}),
        ("POST", "/api/v0/exec", {"command": "touch pwned"}),
        ("GET", "/api/v0/processes", None),
    ]:
        response = agent.http.request(method, path, json=body)
        assert response.status_code == 404, (path, response.text)
    assert not (root / "pwned").exists() and not (root / "x").exists()
    assert agent.http.get("/api/v0/mcp/tools").status_code == 200
    assert not any(
        p.startswith(("/api/v0/fs", "/api/v0/exec", "/api/v0/processes"))
        for p in agent.http.get("/openapi.json").json()["paths"]
    )
