"""The streaming call-tool and exec through the agent link: progress, a request for input answered
by id, output while the command runs, and a caller that hangs up cancelling the call upstream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest

from tests.chat.conftest import Api, ChatServer
from tests.link.conftest import new_linked_workspace, wait_ready
from tests.link.test_link_calls import cancellations, client_of
from tests.support.agent import fixture_server
from tests.support.helpers import wait_until
from tests.support.linked import LinkedAgent
from workdock.agentapi import CallToolResult, Elicitation, ExecResult, Output, Progress
from workdock.chat.services import Services

pytestmark = pytest.mark.anyio


async def test_streamed_calls_and_exec_go_through_the_link(
    chat_server: ChatServer,
    admin_api: Api,
    start_linked_agent: Callable[..., LinkedAgent],
    tmp_path: Path,
    workspace_dir: Path,
) -> None:
    servers: dict[str, Any] = {
        "slow": fixture_server("slow_tool.py", CANCEL_LOG=str(tmp_path / "cancelled.jsonl")),
        "asks": fixture_server("asks_user.py"),
    }
    workspace = await new_linked_workspace(admin_api)
    start_linked_agent(chat_server.url, workspace["agent_token"], servers)
    await wait_ready(admin_api, workspace["id"], "slow")
    await wait_ready(admin_api, workspace["id"], "asks")

    async def through_link(svc: Services) -> tuple[list[Any], str, list[Any]]:
        client = await client_of(svc, workspace["id"])
        progress = [e async for e in client.call_tool_events("slow__sleep", {"seconds": 1})]
        async with aclosing(client.call_tool_events("asks__ask", {"question": "Linked?"})) as events:
            asked = await events.__anext__()
            assert isinstance(asked, Elicitation) and asked.message == "Linked?"
            await client.answer_elicitation(asked.id, "accept", {"answer": "yes"})
            answered = await events.__anext__()
        assert isinstance(answered, CallToolResult)
        command = "echo ready; while [ ! -f go ]; do sleep 0.05; done; echo bye"
        async with aclosing(client.exec_events(command, timeout_ms=30_000)) as events:
            first = await events.__anext__()
            (workspace_dir / "go").write_text("")
            ran = [first, *[e async for e in events]]
        # hanging up a streamed call cancels it upstream, as a plain one does
        async with aclosing(client.call_tool_events("slow__sleep", {"seconds": 120})) as events:
            assert isinstance(await asyncio.wait_for(events.__anext__(), 30), Progress)
        return progress, answered.content[0].text or "", ran

    progress, answered, ran = await chat_server.call(through_link)
    assert any(isinstance(e, Progress) for e in progress) and isinstance(progress[-1], CallToolResult)
    assert answered == "accepted: yes x1 sure=None"
    assert ran[0] == Output("ready\n")
    assert isinstance(ran[-1], ExecResult) and ran[-1].output == "ready\nbye\n"
    [record] = await wait_until(
        lambda: cancellations(tmp_path), timeout=15, message="notifications/cancelled"
    )
    assert record["requestId"] is not None
