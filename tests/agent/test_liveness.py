"""An HTTP server that stops is noticed without waiting for a call to fail: the agent pings it."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.everything import start_everything


@pytest.mark.parametrize(
    ("how", "says"),
    [
        (signal.SIGKILL, "All connection attempts failed"),  # gone: nothing listens any more
        (signal.SIGSTOP, "no answer to a ping within 10 s"),  # hung: connections open, nothing answers
    ],
)
def test_a_stopped_http_server_is_noticed_and_its_tools_unlisted(
    start_agent,
    spawn: Callable[..., subprocess.Popen[bytes]],
    everything_bin: Path,
    tmp_path: Path,
    how: signal.Signals,
    says: str,
) -> None:
    started: list[subprocess.Popen[bytes]] = []

    def keep(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(spawn(*args, **kwargs))
        return started[-1]

    port = start_everything(keep, everything_bin, "streamableHttp", tmp_path / "everything.log")
    agent = start_agent({"ev": {"type": "http", "url": f"http://127.0.0.1:{port}/mcp"}})
    agent.wait_state("ev", "ready", timeout=30)
    assert "ev__echo" in agent.tool_names()

    os.killpg(started[0].pid, how)  # no call is made: the agent must notice by itself
    status = agent.wait_state("ev", "restarting", timeout=30)
    assert "ev__echo" not in agent.tool_names()
    assert says in agent.log()
    if how == signal.SIGKILL:
        assert f"127.0.0.1:{port}/mcp" in status["error"]
