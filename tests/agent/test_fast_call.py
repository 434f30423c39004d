"""The plain call-tool is answered by the agent's HTTP protocol itself: it never reaches the ASGI
app, while the same request made unusual (a query string) does, with the same answer.

The agent runs in this process (its real app and uvicorn server, a real stdio server, real HTTP),
so that the ASGI side of the call-tool chain can be watched; the other fast-path tests
(`test_api.py`, `test_lifecycle.py`) run the agent as its own process and compare the answers.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from starlette.types import Receive, Scope, Send

from tests.support.agent import TOKEN, fixture_server, write_config
from tests.support.helpers import free_port, wait_until
from workdock.agent.app import create_app
from workdock.agent.runtime import AgentSettings
from workdock.agent.serve import uvicorn_server

pytestmark = pytest.mark.anyio


async def test_a_plain_call_never_enters_the_asgi_app(tmp_path: Path) -> None:
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
    asgi_chain = app.hot_path
    assert asgi_chain is not None

    async def watched(scope: Scope, receive: Receive, send: Send) -> None:
        entered.append(scope["query_string"].decode())
        await asgi_chain(scope, receive, send)

    app.hot_path = watched  # the ASGI route of a plain call-tool (behind its token check)
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
                body: dict[str, Any] = {"tool_name": "slow__echo", "arguments": {"text": "fast"}}
                plain = await http.post("/api/v0/mcp/call-tool", json=body)
                assert plain.status_code == 200 and plain.json()["content"][0]["text"] == "fast"
                assert entered == []  # answered by the protocol: the ASGI app never saw it

                routed = await http.post("/api/v0/mcp/call-tool?via=asgi", json=body)
                assert routed.status_code == 200 and routed.content == plain.content
                assert entered == ["via=asgi"]
        finally:
            server.should_exit = True
