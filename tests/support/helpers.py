"""Small helpers every test may use; tests/conftest.py re-exports them.

Import them from here (`from support.helpers import wait_until`) rather than
`from conftest import ...`: with several conftest.py files in the tree, the
name `conftest` can resolve to the wrong one.
"""

from __future__ import annotations

import inspect
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio
import pytest

TESTS = Path(__file__).resolve().parent.parent
FIXTURES = TESTS / "fixtures" / "servers"
NODE_BIN = TESTS / "node_modules" / ".bin"

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


# Each test worker process hands out ports from its own range, below the kernel's ephemeral
# ports (32768 and up): a port one worker picked and released is never picked by another worker
# before its server binds it, nor by a client connection. Otherwise a server that lost the race
# for its port exits, while its test talks to the other worker's server on that port.
_PORTS_PER_WORKER = 2500
_PORTS_BASE = 10000


def _worker_index() -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) % 8 if name.startswith("gw") and name[2:].isdigit() else 0


# A random start: this module may be imported under two names (support., tests.support.).
_next_port = _PORTS_BASE + _worker_index() * _PORTS_PER_WORKER + random.randrange(_PORTS_PER_WORKER)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, from this worker's own range."""
    global _next_port
    first = _PORTS_BASE + _worker_index() * _PORTS_PER_WORKER
    for _ in range(_PORTS_PER_WORKER):
        port = first + (_next_port - first) % _PORTS_PER_WORKER
        _next_port = port + 1
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or lingering): the next one
            return port
    raise RuntimeError(f"no free port in {first}-{first + _PORTS_PER_WORKER - 1}")
