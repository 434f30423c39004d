"""Calls through the link, made by the chat server's own AgentClient and link transport: many in
flight with a slow one, a caller that gives up, 10 MB bodies both ways, and every route answering
as it does over direct HTTP to the same agent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import psutil
import pytest

from tests.chat.conftest import Api, ChatServer
from tests.link.conftest import new_linked_workspace, wait_ready
from tests.support.helpers import wait_until
from tests.support.linked import LinkedAgent
from workdock.agentapi import AgentClient
from workdock.chat.services import Services

pytestmark = pytest.mark.anyio

BIG = 10 * 1024 * 1024


async def linked(
    chat_server: ChatServer,
    api: Api,
    start_linked_agent: Callable[..., LinkedAgent],
    servers: dict[str, Any],
    *args: str,
    **kwargs: Any,
) -> tuple[str, LinkedAgent]:
    workspace = await new_linked_workspace(api)
    agent = start_linked_agent(chat_server.url, workspace["agent_token"], servers, *args, **kwargs)
    agent.token = workspace["agent_token"]
    await wait_ready(api, workspace["id"], "slow")
    return workspace["id"], agent


async def client_of(svc: Services, workspace_id: str) -> AgentClient:
    workspace = await svc.store.get_workspace(workspace_id)
    assert workspace is not None
    return svc.pool.client(workspace)


def cancellations(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "cancelled.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_a_slow_call_holds_back_none_of_seven_others_and_giving_up_cancels_it_upstream(
    chat_server: ChatServer,
    admin_api: Api,
    start_linked_agent: Callable[..., LinkedAgent],
    slow_servers: dict[str, Any],
    tmp_path: Path,
) -> None:
    workspace_id, _ = await linked(chat_server, admin_api, start_linked_agent, slow_servers)

    async def eight_calls(svc: Services) -> tuple[list[str], bool]:
        client = await client_of(svc, workspace_id)
        slow = asyncio.ensure_future(client.call_tool("slow__sleep", {"seconds": 120}))
        fast = [client.call_tool("slow__echo", {"text": f"fast {i}"}) for i in range(7)]
        results = await asyncio.wait_for(asyncio.gather(*fast), 60)
        held = not slow.done()  # the seven answered while the slow one was still running
        slow.cancel()  # the caller gives up, as an interrupted turn does
        await asyncio.gather(slow, return_exceptions=True)
        return [r.content[0].text or "" for r in results], held

    texts, slow_still_running = await chat_server.call(eight_calls)
    assert texts == [f"fast {i}" for i in range(7)]
    assert slow_still_running
    [record] = await wait_until(
        lambda: cancellations(tmp_path), timeout=15, message="notifications/cancelled"
    )
    assert record["requestId"] is not None


async def test_a_command_whose_caller_gives_up_is_ended_with_its_processes(
    chat_server: ChatServer,
    admin_api: Api,
    start_linked_agent: Callable[..., LinkedAgent],
    slow_servers: dict[str, Any],
) -> None:
    workspace_id, agent = await linked(chat_server, admin_api, start_linked_agent, slow_servers)
    marker = "workdock-link-test-marker"

    def commands() -> list[psutil.Process]:
        return agent.running_with(marker)

    async def run_and_give_up(svc: Services) -> tuple[list[str], int]:
        client = await client_of(svc, workspace_id)
        running = asyncio.ensure_future(client.exec(f"sleep 300; echo {marker}", timeout_ms=600_000))

        async def listed_now() -> list[str]:
            return [p.command for p in (await client.list_processes()).processes]

        listed = await wait_until(listed_now, timeout=20, message="the command to be listed")
        alive = len(await wait_until(commands, timeout=10, message="the command's shell to run"))
        running.cancel()  # the caller gives up, as an interrupted turn does
        await asyncio.gather(running, return_exceptions=True)
        return listed, alive

    listed, alive = await chat_server.call(run_and_give_up)
    assert any(marker in command for command in listed) and alive
    await wait_until(lambda: not commands(), timeout=15, message="the command's processes to end")

    async def nothing_listed() -> bool:
        async def count(svc: Services) -> int:
            return len((await (await client_of(svc, workspace_id)).list_processes()).processes)

        return await chat_server.call(count) == 0

    await wait_until(nothing_listed, timeout=10, message="no process listed")


async def test_ten_megabyte_bodies_go_both_ways(
    chat_server: ChatServer,
    admin_api: Api,
    start_linked_agent: Callable[..., LinkedAgent],
    slow_servers: dict[str, Any],
    workspace_dir: Path,
) -> None:
    workspace_id, _ = await linked(chat_server, admin_api, start_linked_agent, slow_servers)
    text = "".join(f"{i:09d}\n" for i in range(BIG // 10))  # 10 MB that shows any lost or reordered frame

    async def big_calls(svc: Services) -> tuple[int, str, str, int]:
        client = await client_of(svc, workspace_id)
        written = await client.write_file("big.txt", text)  # 10 MB to the agent
        # 10 MB each way; small calls to the agent itself go on beside it, not behind it.
        big = asyncio.ensure_future(client.call_tool("slow__echo", {"text": text}, timeout_ms=120_000))
        beside = 0
        while not big.done() and beside < 1000:
            assert (await client.list_processes()).processes == []
            beside += 1
        echoed = await big
        small = await client.call_tool("slow__echo", {"text": "small"})
        return written.bytes_written, echoed.content[0].text or "", small.content[0].text or "", beside

    written, echoed, small, beside = await chat_server.call(big_calls)
    assert written == len(text) == BIG
    assert (workspace_dir / "big.txt").read_text() == text
    assert echoed == text
    assert small == "small"
    assert beside >= 1  # answered while the 10 MB were still on their way


REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/healthz", {}),
    ("GET", "/api/v0/mcp/tools", {}),
    ("GET", "/api/v0/mcp/tools", {"headers": {"If-None-Match": "*"}}),
    ("GET", "/api/v0/mcp/servers", {}),
    ("POST", "/api/v0/mcp/call-tool", {"content": b"{not json"}),
    ("POST", "/api/v0/mcp/call-tool", {"json": {"tool_name": "nope__missing"}}),
    ("POST", "/api/v0/mcp/call-tool", {"json": {"tool_name": "slow__echo", "timeout_ms": 0}}),
    ("POST", "/api/v0/mcp/call-tool", {"json": {"tool_name": "slow__echo", "arguments": {"text": "é ☃"}}}),
    ("POST", "/api/v0/fs/read", {"json": {"path": "missing.txt"}}),
    ("POST", "/api/v0/fs/read", {"json": {"path": 42}}),
    ("POST", "/api/v0/fs/write", {"json": {"path": ".", "content": "x"}}),
    ("POST", "/api/v0/exec", {"json": {}}),
    ("POST", "/api/v0/exec", {"json": {"command": "printf 'a\\nb'; exit 3"}}),
    ("GET", "/api/v0/processes/nope/output", {}),
    ("GET", "/api/v0/processes/nope/output?offset=-1", {}),
    ("POST", "/api/v0/processes/nope/signal", {"json": {"signal": "HUP"}}),
    ("GET", "/api/v0/no-such-route", {}),
    ("DELETE", "/api/v0/mcp/tools", {}),
    ("GET", "/openapi.json", {}),
]


def comparable(response: httpx2.Response) -> tuple[int, Any, str | None]:
    body: Any = response.content
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        if isinstance(body, dict):
            body.pop("duration_ms", None)  # a command's own run time
    return response.status_code, body, response.headers.get("etag")


async def test_every_route_answers_through_the_link_as_over_direct_http(
    chat_server: ChatServer,
    admin_api: Api,
    start_linked_agent: Callable[..., LinkedAgent],
    slow_servers: dict[str, Any],
) -> None:
    workspace_id, agent = await linked(chat_server, admin_api, start_linked_agent, slow_servers, listen=True)
    assert agent.url is not None

    async def through_link(svc: Services) -> list[tuple[int, Any, str | None]]:
        async with httpx2.AsyncClient(
            base_url="http://linked-agent.invalid", transport=svc.pool.links.transport(workspace_id)
        ) as http:
            return [comparable(await http.request(m, path, **kw)) for m, path, kw in REQUESTS]

    answers = await chat_server.call(through_link)
    # With --listen too, the local API takes the same token the agent links with.
    async with httpx2.AsyncClient(
        base_url=agent.url, headers={"Authorization": f"Bearer {agent.token}"}
    ) as http:
        direct = [comparable(await http.request(m, path, **kw)) for m, path, kw in REQUESTS]
    for request, over_link, over_http in zip(REQUESTS, answers, direct, strict=True):
        assert over_link == over_http, request
    statuses = [status for status, _, _ in answers]
    assert statuses == [
        200,
        200,
        304,
        200,
        400,
        404,
        400,
        200,
        404,
        400,
        400,
        400,
        200,
        404,
        400,
        400,
        404,
        405,
        200,
    ]
