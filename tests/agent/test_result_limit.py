"""A result over the limit (--max-result-bytes, WORKDOCK_MAX_RESULT_BYTES) is refused with a 502
that says so, the server stays usable, and the agent never holds the result while reading it:
its memory (RSS, sampled while the call runs) grows by far less than the result."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psutil
import pytest

from tests.support import processes
from tests.support.agent import fixture_server
from tests.support.helpers import FIXTURES, free_port, wait_until_sync

MiB = 1024 * 1024
LIMIT = 8 * MiB
RESULT = 50_000_000
LEGACY_SSE_LIMIT = MiB - 4096  # the SDK's legacy SSE transport caps each event at 1 MiB


@contextmanager
def peak_rss(pid: int) -> Iterator[dict[str, int]]:
    """Sample the process's RSS every few milliseconds while the block runs; ``growth`` is the peak
    over what it was before."""
    process = psutil.Process(pid)
    seen = {"before": process.memory_info().rss, "peak": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            seen["peak"] = max(seen["peak"], process.memory_info().rss)
            stop.wait(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=5)
        seen["growth"] = max(0, seen["peak"] - seen["before"])


@pytest.fixture
def huge_http(spawn: Callable[..., subprocess.Popen[bytes]]) -> Callable[..., str]:
    """Start huge_result.py over HTTP (env as given); returns its base URL."""

    def start(**env: str) -> str:
        port = free_port()
        spawn(
            [sys.executable, FIXTURES / "huge_result.py", "--http", str(port)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_sync(lambda: processes.port_accepts("127.0.0.1", port), timeout=15, message="the fixture")
        return f"http://127.0.0.1:{port}"

    return start


def text(response: Any) -> str:
    assert response.status_code == 200, response.text
    return "".join(block["text"] for block in response.json()["content"])


@pytest.mark.parametrize(
    "transport",
    ["stdio", "stdio-id-last", "http-json", "http-sse", "legacy-sse"],
)
def test_a_result_over_the_limit_is_refused_with_memory_bounded(
    start_agent, huge_http, transport: str
) -> None:
    limit, fits = LIMIT, 4 * MiB
    options: tuple[str, ...] = ()
    env = {"WORKDOCK_MAX_RESULT_BYTES": str(LIMIT)}
    if transport == "stdio":
        entry = fixture_server("huge_result.py")
    elif transport == "stdio-id-last":  # the TypeScript SDK writes the id after the result
        entry = fixture_server("huge_result.py", ID_LAST="1")
        options, env = ("--max-result-bytes", str(LIMIT)), {}
    elif transport == "http-json":
        entry = {"type": "http", "url": huge_http() + "/mcp"}
    elif transport == "http-sse":
        entry = {"type": "http", "url": huge_http(RESPONSE="sse", ID_LAST="1") + "/mcp"}
    else:
        entry = {"type": "sse", "url": huge_http() + "/sse"}
        limit, fits = LEGACY_SSE_LIMIT, 512 * 1024
    agent = start_agent({"big": entry}, *options, env=env)
    agent.wait_state("big", "ready")

    with peak_rss(agent.process.pid) as memory:
        response = agent.call("big__huge", {"bytes": RESULT})
    assert response.status_code == 502, response.text[:300]
    message = response.json()["message"]
    assert message.startswith("tool 'huge' on server 'big': the server sent a message"), message
    assert f"over the limit of {limit:,} bytes; it was dropped" in message
    assert "--max-result-bytes or WORKDOCK_MAX_RESULT_BYTES" in message
    if transport != "http-json":  # a JSON body is not read past the limit, so its size is not known
        # The result's 50 MB and the JSON-RPC envelope around it (its size depends on the request id).
        assert re.search(r"a message of 50,000,\d{3} bytes", message), message
    assert memory["growth"] < limit + 16 * MiB, f"the agent grew by {memory['growth'] / MiB:.0f} MiB"

    # The server stays usable: no restart, and what fits the limit still passes.
    assert text(agent.call("big__echo", {"text": "still here"})) == "still here"
    assert len(text(agent.call("big__huge", {"bytes": fits}))) == fits
    # A huge notification is dropped; the call it came with is answered.
    assert text(agent.call("big__noisy", {"bytes": 2 * limit})) == "after the noise"
    status = agent.server("big")
    assert (status["state"], status["restarts"]) == ("ready", 0)


def test_a_result_over_the_limit_whose_id_cannot_be_read_restarts_the_server(start_agent) -> None:
    agent = start_agent(
        {"big": fixture_server("huge_result.py", ID_LAST="buried")},
        env={"WORKDOCK_MAX_RESULT_BYTES": str(LIMIT)},
    )
    agent.wait_state("big", "ready")
    response = agent.call("big__huge", {"bytes": RESULT})
    # The call cannot be told why; it is not left waiting for its timeout either.
    assert response.status_code == 502, response.text[:300]
    assert "closed the connection during the call" in response.json()["message"]
    assert "its request id could not be read, so the server is restarted" in agent.log()
    assert agent.wait_state("big", "ready")["restarts"] == 1
    assert text(agent.call("big__echo", {"text": "back"})) == "back"
