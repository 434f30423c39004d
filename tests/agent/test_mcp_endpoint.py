"""The agent as one MCP server: real SDK clients over streamable HTTP (``/mcp``) and stdio
(``workdock mcp``), in both protocol eras, against real fixture servers behind it."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.support.agent import TOKEN, RunningAgent, fixture_server, write_config
from tests.support.helpers import wait_until
from workdock.mcp.content import result_to_dict

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto"]  # the 2025 handshake, and 2026-07-28 (server/discover)
# A raw 2025-era `initialize`, for the tests that speak the wire themselves.
INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}


@asynccontextmanager
async def http_client(agent: RunningAgent, mode: str = "auto", **kwargs: Any) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
        transport = streamable_http_client(f"{agent.url}/mcp", http_client=http)
        async with Client(transport, mode=mode, cache=None, **kwargs) as client:  # type: ignore[arg-type]
            yield client


def stdio_params(workspace: Path, *args: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "workdock.cli", "mcp", "--dir", str(workspace), "--trust", *args],
        cwd=str(workspace),
    )


async def raw_call(client: Client, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    """tools/call without the SDK client's own check of structuredContent against outputSchema
    (a mismatch must still pass through the proxy unchanged)."""
    request = types.CallToolRequest(params=types.CallToolRequestParams(name=name, arguments=arguments))
    return await client.session.send_request(request, types.CallToolResult)


def _texts(result: types.CallToolResult) -> list[str]:
    return [block.text for block in result.content if isinstance(block, types.TextContent)]


@pytest.fixture
def two_servers(start_agent: Callable[..., RunningAgent]) -> RunningAgent:
    agent = start_agent({"slow": fixture_server("slow_tool.py"), "kinds": fixture_server("content_kinds.py")})
    agent.wait_state("slow", "ready")
    agent.wait_state("kinds", "ready")
    return agent


@pytest.mark.parametrize("mode", MODES)
async def test_http_lists_the_catalog_and_results_are_exactly_call_tools(two_servers, mode: str) -> None:
    agent = two_servers
    catalog = {t["name"]: t for t in agent.tools()["tools"]}
    async with http_client(agent, mode) as client:
        assert (client.protocol_version == "2026-07-28") == (mode == "auto")
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert sorted(listed) == sorted(catalog)
        for name, tool in listed.items():
            assert tool.input_schema == catalog[name]["input_schema"], name
            wanted_output = catalog[name]["output_schema"]
            assert tool.output_schema == wanted_output, name
        for name in ["kinds__all_kinds", "kinds__structured", "kinds__structured_mismatch", "kinds__fail"]:
            result = await raw_call(client, name, {})
            plain = agent.call(name).json()
            # the same content, isError and structuredContent as call-tool answers
            assert result_to_dict(result) == plain, name
        echoed = await client.call_tool("slow__echo", {"text": "over /mcp"})
        assert _texts(echoed) == [
            agent.call("slow__echo", {"text": "over /mcp"}).json()["content"][0]["text"]
        ]
        with pytest.raises(MCPError) as missing:
            await client.session.call_tool("slow__nope", {})
        assert missing.value.error.code == types.INVALID_PARAMS
        assert "slow__nope" in missing.value.error.message


async def test_http_needs_the_token_and_refuses_a_foreign_origin(two_servers) -> None:
    agent = two_servers
    initialize = INITIALIZE
    accept = {"Accept": "application/json, text/event-stream"}
    with httpx2.Client(base_url=agent.url, timeout=30) as http:
        anonymous = http.post("/mcp", json=initialize, headers=accept)
        assert anonymous.status_code == 401
        assert set(anonymous.json()) == {"message", "detail"}
        auth = {**accept, "Authorization": f"Bearer {TOKEN}"}
        for origin in ["http://evil.example", "http://evil.example:" + str(agent.port), "null"]:
            refused = http.post("/mcp", json=initialize, headers={**auth, "Origin": origin})
            assert refused.status_code == 403, origin
            assert refused.json()["message"] == "origin not allowed"
        unknown = http.post("/mcp/nosuchserver", json=initialize, headers=auth)
        assert unknown.status_code == 404 and "nosuchserver" in unknown.json()["message"]
        for origin in [f"http://127.0.0.1:{agent.port}", f"http://localhost:{agent.port}", None]:
            headers = auth if origin is None else {**auth, "Origin": origin}
            allowed = http.post("/mcp", json=initialize, headers=headers)
            assert allowed.status_code == 200, (origin, allowed.text)
            assert allowed.headers.get("mcp-session-id")


@pytest.mark.parametrize("mode", MODES)
async def test_progress_reaches_the_client_and_its_cancel_reaches_the_server(
    start_agent, tmp_path: Path, mode: str
) -> None:
    cancel_log = tmp_path / "cancelled.jsonl"
    agent = start_agent({"slow": fixture_server("slow_tool.py", CANCEL_LOG=str(cancel_log))})
    agent.wait_state("slow", "ready")
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with http_client(agent, mode) as client:
        result = await client.call_tool("slow__sleep", {"seconds": 1}, progress_callback=on_progress)
        assert _texts(result) == ["slept 1 seconds"]
        assert len(progress) >= 2, progress
        assert progress[-1][0] == pytest.approx(1) and progress[-1][1] == 1
        assert progress[0][2] and "of 1 s" in progress[0][2]

        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "slow__sleep", {"seconds": 60})
            await wait_until(lambda: "sleep 60 started" in agent.log() or _started(agent), timeout=30)
            tg.cancel_scope.cancel()
        await wait_until(lambda: cancel_log.exists() and cancel_log.read_text().strip(), timeout=30)
        # the session still works after a cancelled call
        assert _texts(await client.call_tool("slow__echo", {"text": "still here"})) == ["still here"]


def _started(agent: RunningAgent) -> bool:
    tail = agent.server("slow")["stderr_tail"]
    return any("sleep 60 started" in line for line in tail)


@pytest.mark.parametrize("supports", [True, False])
async def test_a_request_for_input_is_relayed_to_a_client_that_can_answer(
    start_agent, supports: bool
) -> None:
    agent = start_agent({"asks": fixture_server("asks_user.py", FIXTURE_ERA="legacy")})
    agent.wait_state("asks", "ready")
    asked: list[str] = []

    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"answer": "Ada", "count": 2, "sure": True})

    extra = {"elicitation_callback": answer} if supports else {}
    async with http_client(agent, "legacy", **extra) as client:
        result = await client.call_tool("asks__ask", {"question": "Name?"})
    if supports:
        assert asked == ["Name?"]
        assert _texts(result) == ["accepted: Ada x2 sure=True"]
    else:
        assert _texts(result) == ["declined"]


@pytest.mark.parametrize("upstream", ["legacy", "modern"])
async def test_a_2026_client_is_asked_through_input_required_and_its_answer_reaches_the_upstream(
    start_agent, upstream: str
) -> None:
    # The upstream asks during its call (legacy: elicitation/create; modern: its own input_required
    # rounds); a 2026-07-28 client of /mcp is answered input_required and retries with the answer.
    agent = start_agent({"asks": fixture_server("asks_user.py", FIXTURE_ERA=upstream)})
    agent.wait_state("asks", "ready")
    asked: list[str] = []

    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        if params.message in ("First?", "Second?"):
            key = params.message.removesuffix("?").lower()
            return types.ElicitResult(action="accept", content={key: f"{key} answer"})
        return types.ElicitResult(action="accept", content={"answer": "Ada", "count": 3, "sure": False})

    async with http_client(agent, "auto", elicitation_callback=answer) as client:
        assert client.protocol_version == "2026-07-28"
        result = await client.call_tool("asks__ask", {"question": "Name?"})
        assert _texts(result) == ["accepted: Ada x3 sure=False"]
        assert asked == ["Name?"]
        twice = await client.call_tool("asks__ask_twice", {})
        assert _texts(twice) == ["got first answer and second answer"]
        assert asked == ["Name?", "First?", "Second?"]
        # a requestState the endpoint never gave is refused, not guessed at
        request = types.CallToolRequest(
            params=types.CallToolRequestParams(name="asks__ask", arguments={}, request_state="forged")
        )
        with pytest.raises(MCPError) as forged:
            await client.session.send_request(request, types.CallToolResult)
        assert forged.value.error.code == types.INVALID_PARAMS
    async with http_client(agent, "auto") as client:  # no elicitation capability: declined, as before
        assert _texts(await client.call_tool("asks__ask", {"question": "Name?"})) == ["declined"]


async def test_a_2026_client_that_can_be_asked_still_cancels_its_call_upstream(
    start_agent, tmp_path: Path
) -> None:
    cancel_log = tmp_path / "cancelled.jsonl"
    agent = start_agent({"slow": fixture_server("slow_tool.py", CANCEL_LOG=str(cancel_log))})
    agent.wait_state("slow", "ready")

    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    async with http_client(agent, "auto", elicitation_callback=answer) as client:
        # the call runs in a task of its own (it might ask): the client's hang-up still ends it
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "slow__sleep", {"seconds": 60})
            await wait_until(lambda: _started(agent), timeout=30)
            tg.cancel_scope.cancel()
        await wait_until(lambda: cancel_log.exists() and cancel_log.read_text().strip(), timeout=30)
        assert _texts(await client.call_tool("slow__echo", {"text": "still here"})) == ["still here"]


@pytest.mark.parametrize("mode", MODES)
async def test_list_changed_reaches_a_connected_client_when_the_config_gains_a_server(
    start_agent, workspace_dir: Path, mode: str
) -> None:
    agent = start_agent({"slow": fixture_server("slow_tool.py")})
    agent.wait_state("slow", "ready")
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with http_client(agent, mode, message_handler=on_message) as client:
        if mode == "auto":
            async with client.listen(tools_list_changed=True) as subscription:
                write_config(
                    workspace_dir / ".mcp.json",
                    {"slow": fixture_server("slow_tool.py"), "kinds": fixture_server("content_kinds.py")},
                )
                with anyio.fail_after(60):
                    async for event in subscription:
                        if type(event).__name__ == "ToolsListChanged":
                            break
        else:
            await client.list_tools()
            write_config(
                workspace_dir / ".mcp.json",
                {"slow": fixture_server("slow_tool.py"), "kinds": fixture_server("content_kinds.py")},
            )
            with anyio.fail_after(60):
                await changed.wait()
        names = [t.name for t in (await client.list_tools()).tools]
        assert "kinds__text" in names and "slow__echo" in names


async def test_resources_templates_and_prompts_are_served(start_agent) -> None:
    agent = start_agent({"offer": fixture_server("offerings.py")})
    agent.wait_state("offer", "ready")
    catalog_resources = agent.http.get("/api/v0/mcp/resources").json()
    catalog_templates = agent.http.get("/api/v0/mcp/resource-templates").json()
    catalog_prompts = agent.http.get("/api/v0/mcp/prompts").json()
    async with http_client(agent, "legacy") as client:
        resources = (await client.list_resources()).resources
        assert sorted(r.uri for r in resources) == sorted(r["uri"] for r in catalog_resources["resources"])
        templates = (await client.list_resource_templates()).resource_templates
        assert len(templates) == len(catalog_templates["resource_templates"]) == 1
        read = await client.read_resource(resources[0].uri)
        assert read.contents and read.contents[0].uri == resources[0].uri
        with pytest.raises(MCPError) as unknown:
            await client.read_resource("fixture://nowhere")
        assert unknown.value.error.code == -32002
        prompts = (await client.list_prompts()).prompts
        assert sorted(p.name for p in prompts) == sorted(p["name"] for p in catalog_prompts["prompts"])
        assert all(p.name.startswith("offer__") for p in prompts)
        greeting = await client.get_prompt("offer__greet", {"name": "Ada"})
        assert [m.content.text for m in greeting.messages if isinstance(m.content, types.TextContent)] == [
            "Hello, Ada!"
        ]


async def test_stdio_serves_the_workspace_and_only_fronts_one_server(workspace_dir: Path) -> None:
    write_config(
        workspace_dir / ".mcp.json",
        {"slow": fixture_server("slow_tool.py"), "kinds": fixture_server("content_kinds.py")},
    )
    async with Client(stdio_params(workspace_dir), cache=None) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"slow__echo", "slow__sleep", "kinds__structured"} <= names
        result = await raw_call(client, "kinds__structured_mismatch", {})
        assert result.structured_content is not None and not result.is_error
        assert _texts(await client.call_tool("slow__echo", {"text": "stdio"})) == ["stdio"]
    async with Client(stdio_params(workspace_dir, "--only", "slow"), cache=None) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {"echo", "sleep"}
        assert _texts(await client.call_tool("echo", {"text": "fronted"})) == ["fronted"]
        with pytest.raises(MCPError):
            await client.session.call_tool("slow__echo", {})


async def test_a_claude_code_style_launch_from_another_agents_config(
    start_agent, workspace_dir: Path, tmp_path: Path
) -> None:
    write_config(workspace_dir / ".mcp.json", {"inner": fixture_server("slow_tool.py")})
    outer_workspace = tmp_path / "outer"
    outer_workspace.mkdir()
    launch = {"command": sys.executable, "args": stdio_params(workspace_dir).args}
    write_config(outer_workspace / ".mcp.json", {"outer": launch})
    outer = RunningAgent(outer_workspace, tmp_path / "outer.log")
    try:
        outer.wait_for(
            lambda: "outer__inner__echo" in outer.tool_names(), 60, "the nested tools to be listed"
        )
        answer = outer.call("outer__inner__echo", {"text": "nested"}).json()
        assert answer["content"][0]["text"] == "nested"
        assert outer.server("outer")["protocol_version"]
    finally:
        outer.stop()


def test_the_stdio_command_writes_only_protocol_to_stdout(workspace_dir: Path) -> None:
    import subprocess

    write_config(workspace_dir / ".mcp.json", {"slow": fixture_server("slow_tool.py")})
    params = stdio_params(workspace_dir)
    initialize = INITIALIZE
    done = subprocess.run(
        [params.command, *params.args],
        input=(json.dumps(initialize) + "\n").encode(),
        capture_output=True,
        timeout=60,
        cwd=workspace_dir,
    )
    lines = [line for line in done.stdout.decode().splitlines() if line.strip()]
    assert len(lines) == 1, done.stdout
    assert json.loads(lines[0])["result"]["capabilities"]["tools"]["listChanged"] is True
    assert "ready" in done.stderr.decode()


async def test_a_server_that_dies_or_is_not_ready_answers_a_json_rpc_error(start_agent) -> None:
    agent = start_agent({"crashy": fixture_server("crash_during_call.py")})
    agent.wait_state("crashy", "ready")
    async with http_client(agent, "legacy") as client:
        with pytest.raises(MCPError) as died:
            await client.call_tool("crashy__crash", {})
        assert "crashy" in died.value.error.message, died.value.error
        assert died.value.error.code == types.INTERNAL_ERROR
        # The server comes back on its own; meanwhile a call is an error naming its state, never a hang.
        outcomes: list[str] = []

        async def answered() -> bool:
            try:
                outcomes.append(_texts(await client.call_tool("crashy__echo", {"text": "back"}))[0])
            except MCPError as exc:
                outcomes.append(exc.error.message)
            return outcomes[-1] == "back"

        await wait_until(answered, timeout=60, interval=0.2)
        assert all(o == "back" or "crashy" in o for o in outcomes), outcomes


async def test_http_per_server_path_fronts_one_server_under_its_own_names(two_servers) -> None:
    agent = two_servers
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
        transport = streamable_http_client(f"{agent.url}/mcp/kinds", http_client=http)
        async with Client(transport, mode="legacy", cache=None) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "structured" in names and not any("__" in n for n in names)
            assert (
                result_to_dict(await raw_call(client, "structured", {}))
                == agent.call("kinds__structured").json()
            )


def test_the_stdio_command_stops_its_servers_on_sigterm_while_the_client_is_connected(
    workspace_dir: Path,
) -> None:
    import signal
    import subprocess

    import psutil

    write_config(workspace_dir / ".mcp.json", {"slow": fixture_server("slow_tool.py")})
    params = stdio_params(workspace_dir)
    process = subprocess.Popen(
        [params.command, *params.args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=workspace_dir,
        start_new_session=True,
    )
    try:
        initialize = INITIALIZE
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write((json.dumps(initialize) + "\n").encode())
        process.stdin.flush()
        assert json.loads(process.stdout.readline())["id"] == 1
        children = psutil.Process(process.pid).children(recursive=True)
        assert children, "the server under workdock mcp is running"
        process.send_signal(signal.SIGTERM)  # stdin stays open: the signal alone must end it
        assert process.wait(timeout=15) == 0
        survivors = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert not survivors, survivors
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
