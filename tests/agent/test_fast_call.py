"""The plain call-tool, and a plain ``tools/call`` on ``/mcp``, are answered by the agent's HTTP
protocol itself: they never reach the ASGI app, while the same request made unusual (a query
string) does, with the same answer.

The agent runs in this process (its real app and uvicorn server, a real stdio server, real HTTP),
so that the ASGI side of each chain can be watched; the other fast-path tests (`test_api.py`,
`test_lifecycle.py`, `test_mcp_lean.py`) run the agent as its own process and compare the answers.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support.agent import TOKEN, fixture_server, write_config
from tests.support.helpers import free_port, wait_until
from workdock.agent.app import create_app
from workdock.agent.runtime import AgentSettings
from workdock.agent.serve import uvicorn_server

pytestmark = pytest.mark.anyio


@dataclass
class InProcessAgent:
    app: FastAPI
    http: httpx2.AsyncClient
    entered: list[str]  # "path?query" of each request that reached a watched ASGI chain


def watch(chain: ASGIApp | None, entered: list[str]) -> ASGIApp:
    assert chain is not None

    async def watched(scope: Scope, receive: Receive, send: Send) -> None:
        entered.append(f"{scope['path']}?{scope['query_string'].decode()}")
        await chain(scope, receive, send)

    return watched


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[InProcessAgent]:
    write_config(tmp_path / ".mcp.json", {"slow": fixture_server("slow_tool.py")})
    settings = AgentSettings(
        workspace=tmp_path,
        token=TOKEN,
        port=free_port(),
        watch=False,
        trust_all=True,
        state_dir=tmp_path / "state",
        trust_store=tmp_path / "trust.json",
    )
    app = create_app(settings)
    entered: list[str] = []
    # The ASGI chains of a plain call-tool and of /mcp (each behind its token check).
    app.hot_path = watch(app.hot_path, entered)  # type: ignore[attr-defined]
    app.mcp_path = watch(app.mcp_path, entered)  # type: ignore[attr-defined]
    server = uvicorn_server(settings, app=app)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # the test's own

    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        try:
            async with httpx2.AsyncClient(
                base_url=f"http://127.0.0.1:{settings.port}", headers={"Authorization": f"Bearer {TOKEN}"}
            ) as http:

                async def ready() -> bool:
                    try:
                        servers = (await http.get("/api/v0/mcp/servers")).json()["servers"]
                    except httpx2.TransportError:
                        return False
                    return [s["state"] for s in servers] == ["ready"]

                await wait_until(ready, timeout=60, message="the agent and its server")
                yield InProcessAgent(app, http, entered)
        finally:
            server.should_exit = True


async def test_a_plain_call_never_enters_the_asgi_app(agent: InProcessAgent) -> None:
    body: dict[str, Any] = {"tool_name": "slow__echo", "arguments": {"text": "fast"}}
    plain = await agent.http.post("/api/v0/mcp/call-tool", json=body)
    assert plain.status_code == 200 and plain.json()["content"][0]["text"] == "fast"
    assert agent.entered == []  # answered by the protocol: the ASGI app never saw it

    routed = await agent.http.post("/api/v0/mcp/call-tool?via=asgi", json=body)
    assert routed.status_code == 200 and routed.content == plain.content
    assert agent.entered == ["/api/v0/mcp/call-tool?via=asgi"]


@pytest.mark.parametrize("path", ["/mcp", "/mcp/slow"])
async def test_a_plain_mcp_tools_call_never_enters_the_asgi_app(agent: InProcessAgent, path: str) -> None:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    initialize = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    opened = await agent.http.post(path, content=json.dumps(initialize), headers=headers)
    assert opened.status_code == 200
    headers["Mcp-Session-Id"] = opened.headers["mcp-session-id"]
    headers["MCP-Protocol-Version"] = "2025-06-18"
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await agent.http.post(path, content=json.dumps(note), headers=headers)).status_code == 202
    assert agent.entered == [f"{path}?", f"{path}?"]  # the SDK's handshake, through ASGI
    agent.entered.clear()

    tool = "slow__echo" if path == "/mcp" else "echo"  # /mcp/SERVER fronts one server, unprefixed
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": {"text": "fast"}},
    }
    plain = await agent.http.post(path, content=json.dumps(call), headers=headers)
    assert plain.status_code == 200 and plain.headers["content-type"] == "application/json"
    assert plain.headers["mcp-session-id"] == headers["Mcp-Session-Id"]
    assert plain.json() == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {"content": [{"type": "text", "text": "fast"}], "isError": False},
    }
    assert agent.entered == []  # answered by the protocol

    routed = await agent.http.post(f"{path}?via=asgi", content=json.dumps(call), headers=headers)
    assert routed.status_code == 200 and routed.json() == plain.json()  # the same lean path, via uvicorn
    assert agent.entered == [f"{path}?via=asgi"]
    agent.entered.clear()

    # An Origin the endpoint refuses is never answered by the protocol: uvicorn's route says 403.
    refused = await agent.http.post(
        path, content=json.dumps(call), headers={**headers, "Origin": "http://evil.test"}
    )
    assert refused.status_code == 403 and refused.json()["message"] == "origin not allowed"
    assert agent.entered == [f"{path}?"]
