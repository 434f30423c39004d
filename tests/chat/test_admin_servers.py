"""Admin MCP servers, through the chat server's own hub: configured headers stay with their
server's origin, and a server that stops is noticed without waiting for a call to fail."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.support import processes
from tests.support.agent import RunningAgent
from tests.support.everything import start_everything
from tests.support.helpers import FIXTURES, free_port, wait_until, wait_until_sync
from tests.support.http_stub import Answer

pytestmark = pytest.mark.anyio

SECRETS = {"Authorization": "Bearer admin-hdr-s3cret", "X-Api-Key": "admin-key-s3cret"}


async def admin_status(api: Api, server_id: str, state: str) -> dict[str, Any] | None:
    status = (await api.get(f"/mcp-servers/{server_id}"))["status"]
    return status if status["state"] == state else None


@pytest.mark.parametrize(("transport", "path"), [("http", "/mcp"), ("sse", "/sse")])
async def test_a_redirect_to_another_origin_is_refused_and_the_headers_stay_home(
    admin_api: Api, http_stub: Callable[..., Any], transport: str, path: str
) -> None:
    elsewhere = http_stub(lambda _: Answer(200, {"content-type": "application/json"}, b"{}"))
    redirecting = http_stub(lambda _: Answer(307, {"location": f"{elsewhere.url}{path}"}))
    server = await admin_api.post(
        "/mcp-servers",
        {"slug": "moved", "url": f"{redirecting.url}{path}", "transport": transport, "headers": SECRETS},
        expect=201,
    )
    status = await wait_until(
        lambda: admin_status(admin_api, server["id"], "failed"), timeout=30, message="the server to fail"
    )
    assert f"{elsewhere.url}{path}" in status["error"] and "not followed" in status["error"]
    assert redirecting.requests, "the chat server never tried the configured server"
    assert all(r.headers.get("authorization") == SECRETS["Authorization"] for r in redirecting.requests)
    assert all(r.headers.get("x-api-key") == SECRETS["X-Api-Key"] for r in redirecting.requests)
    assert elsewhere.requests == []


async def test_a_stopped_admin_server_is_reported_within_30_s(
    admin_api: Api,
    start_agent: Callable[..., RunningAgent],
    spawn: Callable[..., subprocess.Popen[bytes]],
    everything_bin: Path,
    tmp_path: Path,
) -> None:
    started: list[subprocess.Popen[bytes]] = []

    def keep(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(spawn(*args, **kwargs))
        return started[-1]

    port = start_everything(keep, everything_bin, "streamableHttp", tmp_path / "everything.log")
    chat_id = await new_chat(admin_api, start_agent({}).url)
    server = await admin_api.post(
        "/mcp-servers", {"slug": "ev", "url": f"http://127.0.0.1:{port}/mcp"}, expect=201
    )

    async def tools() -> dict[str, Any]:
        return await admin_api.get(f"/chats/{chat_id}/tools")

    async def offered() -> bool:
        return "ev__echo" in {t["name"] for t in (await tools())["tools"]}

    await wait_until(offered, timeout=30, message="the admin server's tools")

    os.killpg(started[0].pid, signal.SIGKILL)  # gone without a word: no call is made to notice it
    started[0].wait(timeout=10)

    async def reported() -> dict[str, Any] | None:
        listing = await tools()
        failures = [f for f in listing["failures"] if (f["source"], f["server"]) == ("admin", "ev")]
        return listing if failures else None

    listing = await wait_until(reported, timeout=30, message="the stopped server to be reported")
    assert "ev__echo" not in {t["name"] for t in listing["tools"]}
    [failure] = [f for f in listing["failures"] if f["server"] == "ev"]
    assert failure["error"].startswith("restarting: ")
    assert (await admin_api.get(f"/mcp-servers/{server['id']}"))["status"]["state"] == "restarting"


async def test_an_admin_result_over_the_limit_is_an_error_result_that_says_so(
    start_chat_server: Callable[..., ChatServer],
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    spawn: Callable[..., subprocess.Popen[bytes]],
) -> None:
    port = free_port()
    spawn([sys.executable, FIXTURES / "huge_result.py", "--http", str(port)], stdout=subprocess.DEVNULL)
    wait_until_sync(lambda: processes.port_accepts("127.0.0.1", port), timeout=15, message="the fixture")
    server = start_chat_server(max_result_bytes=1024 * 1024)
    api = Api(server.url, server.admin_token)
    try:
        await api.post("/mcp-servers", {"slug": "big", "url": f"http://127.0.0.1:{port}/mcp"}, expect=201)
        chat_id = await new_chat(api, start_agent({}).url)

        async def offered() -> bool:
            tools = (await api.get(f"/chats/{chat_id}/tools"))["tools"]
            return "big__huge" in {t["name"] for t in tools}

        await wait_until(offered, timeout=30, message="the admin server's tools")
        fake_model.add(
            Reply(calls=[Call("big__huge", {"bytes": 3_000_000}), Call("big__echo", {"text": "fine"})]),
            Reply(text="done"),
        )
        await api.post(f"/chats/{chat_id}/messages", {"content": "dump"}, expect=202)
        await api.events(chat_id, turn_ended())
        results = {p["tool_name"]: p for p in (await api.messages(chat_id))[2]["parts"]}
    finally:
        await api.aclose()
    huge = results["big__huge"]
    assert huge["is_error"]
    assert huge["content"][0]["text"].startswith(
        "tool big__huge failed: tool 'huge' on server 'big': the server sent a message over the limit "
        "of 1,048,576 bytes; it was dropped"
    )
    assert not results["big__echo"]["is_error"]
