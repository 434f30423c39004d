"""Shared test helpers and fixtures.

Rules these helpers exist to keep: wait on a condition with a deadline (never a
bare sleep); every process a test starts is stopped by the test, whole process
group included; servers listen on 127.0.0.1 only; under CI=true a missing
dependency fails instead of skipping.

The helpers live in `support/` (import them from there); they are re-exported
here for tests that already import them from this module.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from support import processes
from support.everything import LISTEN_LOCALHOST_PRELOAD, start_everything
from support.helpers import (
    FIXTURES,
    NODE_BIN,
    TESTS,
    free_port,
    in_ci,
    require,
    wait_until,
    wait_until_sync,
)
from support.http_stub import http_stub

__all__ = [
    "FIXTURES",
    "LISTEN_LOCALHOST_PRELOAD",
    "NODE_BIN",
    "TESTS",
    "free_port",
    "http_stub",
    "in_ci",
    "require",
    "start_everything",
    "wait_until",
    "wait_until_sync",
]

# The suite's workspaces are its own: their project servers start without asking. The trust
# gate's tests turn this off for the agents they start (WORKDOCK_TRUST=0).
os.environ["WORKDOCK_TRUST"] = "1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def workspace_dir(tmp_path: Path) -> Path:
    """A workspace directory of its own inside ``tmp_path``, so tests can also use paths outside it."""
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start processes in their own process group; at teardown each group is stopped
    (SIGTERM, SIGKILL after 3 s) and the test errors if any member survived.

    Same arguments as `support.processes.start_process`.
    """
    started: list[subprocess.Popen[bytes]] = []

    def start(args: Sequence[str | os.PathLike[str]], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = processes.start_process(args, **kwargs)
        started.append(proc)
        return proc

    yield start
    failures: list[AssertionError] = []
    for proc in reversed(started):
        try:
            processes.stop_process(proc)
        except AssertionError as exc:
            failures.append(exc)
    if failures:
        raise failures[0]


@pytest.fixture
def everything_bin() -> Path:
    """`mcp-server-everything` from tests/node_modules (installed by scripts/test)."""
    path = NODE_BIN / "mcp-server-everything"
    require(path.exists(), f"{path} is missing: run `npm ci` in tests/ (scripts/test does)")
    return path


@pytest.fixture
def everything_http_url(
    spawn: Callable[..., subprocess.Popen[bytes]], everything_bin: Path, tmp_path: Path
) -> str:
    """URL of a fresh server-everything speaking streamable HTTP on 127.0.0.1 (stopped after the test)."""
    port = start_everything(spawn, everything_bin, "streamableHttp", tmp_path / "everything-http.log")
    return f"http://127.0.0.1:{port}/mcp"


@pytest.fixture
def everything_sse_url(
    spawn: Callable[..., subprocess.Popen[bytes]], everything_bin: Path, tmp_path: Path
) -> str:
    """URL of a fresh server-everything speaking legacy HTTP+SSE on 127.0.0.1 (stopped after the test)."""
    port = start_everything(spawn, everything_bin, "sse", tmp_path / "everything-sse.log")
    return f"http://127.0.0.1:{port}/sse"
