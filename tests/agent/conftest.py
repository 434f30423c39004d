from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent import RunningAgent, write_config


@pytest.fixture
def start_agent(workspace_dir: Path, tmp_path: Path) -> Iterator[Callable[..., RunningAgent]]:
    """Start `workdock agent` on `workspace_dir` (with `servers` as its .mcp.json); stopped after the test."""
    agents: list[RunningAgent] = []

    def start(
        servers: dict[str, Any] | None = None, *args: str, env: dict[str, str] | None = None
    ) -> RunningAgent:
        if servers is not None:
            write_config(workspace_dir / ".mcp.json", servers)
        agent = RunningAgent(workspace_dir, tmp_path / f"agent-{len(agents)}.log", *args, env=env)
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        took = agent.stop()
        assert took < 10, f"the agent took {took:.1f} s to shut down"
