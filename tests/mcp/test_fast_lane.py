"""A stdio server's plain call goes on the fast lane (below the SDK session), on both protocol
eras, and keeps what the session's path gives: cancellation and timeouts reach the server as
``notifications/cancelled`` for the call's own id, a server that dies fails its calls at once,
and lane calls and session calls to one server, in flight together, each get their own answer."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from support.helpers import FIXTURES, wait_until
from workdock.agent.child_env import workspace_env
from workdock.mcp import stdio
from workdock.mcp.config import parse_entry
from workdock.mcp.connection import CallTimeout, ServerUnavailable
from workdock.mcp.fast_lane import ID_PREFIX
from workdock.mcp.hooks import CallHooks
from workdock.mcp.hub import Hub

pytestmark = pytest.mark.anyio

_STARTED = re.compile(r"sleep (\S+) started \(request (\S+)\)")


@pytest.fixture(params=["modern", "legacy", "legacy, through the pump"])
async def hub(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Hub]:
    env = {"CANCEL_LOG": str(tmp_path / "cancelled.jsonl")}
    if request.param != "modern":
        env["FIXTURE_ERA"] = "legacy"
    pumped: list[object] = []
    if request.param.endswith("pump"):
        # Where the stdin pipe is not asyncio's, the lane writes its lines through the pump.
        def no_asyncio_pipe(stdin: object) -> None:
            pumped.append(stdin)

        monkeypatch.setattr(stdio, "_asyncio_writer", no_asyncio_pipe)
    servers = {
        "slow": {"command": sys.executable, "args": [str(FIXTURES / "slow_tool.py")], "env": env},
        "crash": {"command": sys.executable, "args": [str(FIXTURES / "crash_during_call.py")]},
    }
    async with Hub(workspace=tmp_path, child_env=workspace_env, connect_timeout=60) as hub:
        await hub.apply([parse_entry(name, spec, os.environ) for name, spec in servers.items()])
        with anyio.fail_after(90):
            while {s.name: s.state for s in hub.statuses()} != {"slow": "ready", "crash": "ready"}:
                await hub.wait_for_change()
        era = {s.name: s.protocol_version for s in hub.statuses()}["slow"]
        assert (era == "2026-07-28") == (request.param == "modern")
        assert len(pumped) == (2 if request.param.endswith("pump") else 0)  # (both servers)
        yield hub


def started(hub: Hub, seconds: str) -> list[str]:
    """The request ids the slow server logged for its `sleep` calls of ``seconds``."""
    status = next(s for s in hub.statuses() if s.name == "slow")
    return [m[2] for line in status.stderr_tail if (m := _STARTED.search(line)) and m[1] == seconds]


def cancelled(tmp_path: Path) -> list[dict[str, Any]]:
    log = tmp_path / "cancelled.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


async def test_a_plain_call_goes_on_the_lane_and_one_with_progress_through_the_session(hub: Hub) -> None:
    wire = await hub.call_wire("slow__sleep", {"seconds": 0.01})
    assert wire == {
        "content": [{"type": "text", "text": "slept 0.01 seconds"}],
        "is_error": False,
        "structured_content": None,
    }
    updates: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append(progress)

    wire = await hub.call_wire("slow__sleep", {"seconds": 0.5}, hooks=CallHooks(on_progress=on_progress))
    assert wire["content"] == [{"type": "text", "text": "slept 0.5 seconds"}]
    assert updates  # the session's path carries the progress token
    [lane_id] = await wait_until(lambda: started(hub, "0.01"), message="the lane call's log line")
    [session_id] = await wait_until(lambda: started(hub, "0.5"), message="the session call's log line")
    assert lane_id.startswith(ID_PREFIX)
    assert not session_id.startswith(ID_PREFIX)


async def test_a_caller_that_gives_up_on_the_lane_cancels_its_own_request(hub: Hub, tmp_path: Path) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(hub.call_wire, "slow__sleep", {"seconds": 60})
        [request_id] = await wait_until(lambda: started(hub, "60"), 30, message="the call to start")
        tg.cancel_scope.cancel()
    assert request_id.startswith(ID_PREFIX)
    records = await wait_until(lambda: cancelled(tmp_path), 10, message="notifications/cancelled")
    assert records == [{"requestId": request_id, "reason": "caller cancelled"}]
    # The server is still there, and the lane still answers.
    wire = await hub.call_wire("slow__echo", {"text": "after"})
    assert wire["content"] == [{"type": "text", "text": "after"}]


async def test_a_lane_call_that_times_out_cancels_its_own_request(hub: Hub, tmp_path: Path) -> None:
    with pytest.raises(CallTimeout, match=r"did not answer within 0\.5 s"):
        await hub.call_wire("slow__sleep", {"seconds": 60}, timeout=0.5)
    [request_id] = started(hub, "60")
    records = await wait_until(lambda: cancelled(tmp_path), 10, message="notifications/cancelled")
    assert records == [{"requestId": request_id, "reason": "timed out after 0.5s"}]


async def test_a_server_that_dies_mid_call_fails_the_lane_call_at_once(hub: Hub) -> None:
    # Far sooner than the call's timeout: the call does not wait for an answer that cannot come.
    with anyio.fail_after(30), pytest.raises(ServerUnavailable, match="closed the connection"):
        await hub.call_wire("crash__crash", {}, timeout=600)


async def test_lane_and_session_calls_in_flight_together_each_get_their_own_answer(hub: Hub) -> None:
    answers: dict[str, str] = {}

    async def on_lane(i: int) -> None:
        wire = await hub.call_wire("slow__echo", {"text": f"lane {i}"})
        answers[f"lane {i}"] = wire["content"][0]["text"]

    async def on_session(i: int) -> None:
        result = await hub.call("slow__echo", {"text": f"session {i}"})
        answers[f"session {i}"] = result.content[0].text  # type: ignore[union-attr]

    async def noop(progress: float, total: float | None, message: str | None) -> None:
        pass

    async def with_progress(i: int) -> None:
        wire = await hub.call_wire("slow__echo", {"text": f"progress {i}"}, hooks=CallHooks(on_progress=noop))
        answers[f"progress {i}"] = wire["content"][0]["text"]

    async with anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(on_lane, i)
            tg.start_soon(on_session, i)
            if i % 4 == 0:
                tg.start_soon(with_progress, i)
    assert len(answers) == 90
    assert all(key == text for key, text in answers.items())


async def test_lane_calls_to_a_server_that_stops_reading_wait_for_it_and_are_all_answered(hub: Hub) -> None:
    # While the server is blocked its stdin pipe fills: the calls behind it wait for the server to
    # read again, then each is answered, none lost or mixed up.
    text = "x" * 50_000
    answers: dict[int, str] = {}

    async def echo(i: int) -> None:
        wire = await hub.call_wire("slow__echo", {"text": f"{i} {text}"}, timeout=60)
        answers[i] = wire["content"][0]["text"]

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(hub.call_wire, "slow__sleep", {"seconds": 2, "block": True})
            await wait_until(lambda: started(hub, "2"), 30, message="the server to block")
            for i in range(40):  # 2 MB: far more than a pipe and the lane's buffer hold
                tg.start_soon(echo, i)
    assert answers == {i: f"{i} {text}" for i in range(40)}
