"""Shared test helpers and fixtures.

Rules these helpers exist to keep: wait on a condition with a deadline (never a
bare sleep); every process a test starts is stopped by the test, whole process
group included; servers listen on 127.0.0.1 only; under CI=true a missing
dependency fails instead of skipping.
"""

from __future__ import annotations

import inspect
import os
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from support import processes

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures" / "servers"
NODE_BIN = TESTS / "node_modules" / ".bin"
LISTEN_LOCALHOST_PRELOAD = TESTS / "fixtures" / "node" / "listen-localhost.cjs"

T = TypeVar("T")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def require(condition: object, why: str) -> None:
    """Skip the test when `condition` is false, or fail it under CI=true.

    CI installs every dependency, so there a missing one is a broken setup,
    not a reason to quietly test less.
    """
    if condition:
        return
    if in_ci():
        pytest.fail(f"missing test dependency (CI=true): {why}", pytrace=False)
    pytest.skip(why)


async def wait_until(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10,
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    """Poll `predicate` (sync or async) until it returns something truthy; return that.

    Raises AssertionError naming `message` when `timeout` seconds pass first.
    """
    deadline = anyio.current_time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if anyio.current_time() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        await anyio.sleep(interval)


def wait_until_sync(
    predicate: Callable[[], T],
    timeout: float = 10,
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    """The blocking twin of `wait_until`, for sync tests and fixtures."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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


def start_everything(
    spawn: Callable[..., subprocess.Popen[bytes]], everything_bin: Path, mode: str, log_path: Path,
    port: int | None = None,
) -> int:
    """Start server-everything in `mode` ("sse" or "streamableHttp") on 127.0.0.1; return its port.

    It picks its port from env PORT (default 3001) and has no host setting (it
    binds all interfaces), so a preload pins every listen to 127.0.0.1. Its
    output goes to a file: it logs every request, and a pipe nobody reads fills.
    """
    port = port or free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "NODE_OPTIONS": f'{os.environ.get("NODE_OPTIONS", "")} --require "{LISTEN_LOCALHOST_PRELOAD}"'.strip(),
    }
    with open(log_path, "wb") as log:
        proc = spawn([everything_bin, mode], env=env, stdout=log, stderr=subprocess.STDOUT)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(
                f"server-everything {mode} exited with {proc.returncode}: {log_path.read_text(errors='replace')}"
            )
        return processes.port_accepts("127.0.0.1", port)

    wait_until_sync(ready, timeout=20, message=f"server-everything {mode} to accept on 127.0.0.1:{port}")
    addresses = processes.listening_addresses(proc.pid)
    assert addresses == {("127.0.0.1", port)}, f"server-everything must listen on loopback only: {addresses}"
    return port


@pytest.fixture
def everything_http_url(
    spawn: Callable[..., subprocess.Popen[bytes]], everything_bin: Path, tmp_path: Path
) -> str:
    """URL of a fresh server-everything speaking streamable HTTP on 127.0.0.1."""
    port = start_everything(spawn, everything_bin, "streamableHttp", tmp_path / "everything-http.log")
    return f"http://127.0.0.1:{port}/mcp"


@pytest.fixture
def everything_sse_url(spawn: Callable[..., subprocess.Popen[bytes]], everything_bin: Path, tmp_path: Path) -> str:
    """URL of a fresh server-everything speaking the legacy HTTP+SSE transport on 127.0.0.1."""
    port = start_everything(spawn, everything_bin, "sse", tmp_path / "everything-sse.log")
    return f"http://127.0.0.1:{port}/sse"
