"""Prove that each fault fixture (tests/fixtures/servers) plays the fault its docstring
describes, driven by a direct `mcp` client, and that server-everything answers over
stdio, streamable HTTP and SSE. The agent's own tests rely on these behaviours.
"""

from __future__ import annotations

import base64
import json
import math
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import mcp_types as types
import psutil
import pytest
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.client.sse import sse_client
from mcp.client.subscriptions import ToolsListChanged
from mcp.shared.exceptions import MCPError

from support.helpers import FIXTURES, wait_until, wait_until_sync
from support.stdio import StdioServer, python_server

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"


@asynccontextmanager
async def connect(server: StdioServer, mode: str = "legacy", **kwargs: Any) -> AsyncIterator[Client]:
    """An `mcp.Client` over a running fixture; no response cache, so every list is a real request."""
    async with Client(server.transport(), mode=mode, cache=None, **kwargs) as client:
        yield client


def texts(result: types.CallToolResult) -> list[str]:
    return [block.text for block in result.content if isinstance(block, types.TextContent)]


async def list_all_tools(client: Client) -> tuple[list[str], int]:
    """Every tool name, following cursors; and how many tools/list requests that took."""
    names: list[str] = []
    cursor: str | None = None
    requests = 0
    while True:
        page = await client.list_tools(cursor=cursor)
        requests += 1
        names += [tool.name for tool in page.tools]
        cursor = page.next_cursor
        if cursor is None:
            return names, requests
        assert requests < 100, "the server never stops paginating"


# --- hang_initialize -------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "first_method"), [("legacy", "initialize"), ("auto", "server/discover")])
async def test_hang_initialize_never_answers(mode: str, first_method: str) -> None:
    server = python_server(FIXTURES / "hang_initialize.py")
    server.exit_grace = 0.2  # it ignores EOF on purpose; do not wait long for it
    async with server:
        with anyio.move_on_after(1.5) as scope:
            async with connect(server, mode):
                pytest.fail("the handshake completed, but the server should never answer")
        assert scope.cancelled_caught
        await wait_until(
            lambda: f"hang_initialize: received {first_method}" in server.stderr_lines,
            message=f"the server to log that it received {first_method}",
        )
        assert server.stdout_lines == []

        await server.close_stdin()
        await wait_until(
            lambda: "hang_initialize: stdin closed, hanging on" in server.stderr_lines,
            message="EOF to be seen",
        )
        assert server.process.returncode is None, "it should keep running after EOF, like a hung server"
    assert server.process.returncode == -signal.SIGTERM


# --- crash_during_call -----------------------------------------------------------------------


async def test_crash_during_call_exits_with_code_3_without_answering() -> None:
    async with python_server(FIXTURES / "crash_during_call.py") as server:
        async with connect(server) as client:
            assert texts(await client.call_tool("echo", {"text": "still alive"})) == ["still alive"]
            with anyio.fail_after(10):
                with pytest.raises(MCPError, match="Connection closed"):
                    await client.call_tool("crash", {})
        assert await server.wait_exit(10) == 3
        assert "crash_during_call: exiting with code 3" in server.stderr_lines
    crash_call = next(m for m in server.sent if m.get("params", {}).get("name") == "crash")
    answered = {json.loads(line).get("id") for line in server.stdout_lines}
    assert crash_call["id"] not in answered


# --- garbage_stdout --------------------------------------------------------------------------


async def test_garbage_stdout_serves_echo_between_non_json_lines() -> None:
    async with python_server(FIXTURES / "garbage_stdout.py") as server:
        async with connect(server) as client:
            assert [tool.name for tool in (await client.list_tools()).tools] == ["echo"]
            assert texts(await client.call_tool("echo", {"text": "through the noise"})) == [
                "through the noise"
            ]

    startup = [
        "hello from a chatty server",
        '{"level": "info", "msg": "json, but not json-rpc"}',
        "",
        "\x1b[32mready\x1b[0m in 12 ms",
    ]
    assert server.stdout_lines[:4] == startup
    json_lines = [line for line in server.stdout_lines if line not in server.non_json_lines]
    assert len(json_lines) == 3  # initialize, tools/list, tools/call answers
    # Each protocol message is preceded by its own garbage line.
    for number, line in enumerate(json_lines, start=1):
        index = server.stdout_lines.index(line)
        assert server.stdout_lines[index - 1] == f"hello from a chatty server (before message {number})"
    assert len(server.non_json_lines) == len(startup) + len(json_lines)


# --- stderr_flood ----------------------------------------------------------------------------


async def test_stderr_flood_writes_numbered_lines_and_still_serves() -> None:
    async with python_server(FIXTURES / "stderr_flood.py") as server:
        async with connect(server) as client:
            for n in (1, 2):
                assert texts(await client.call_tool("echo", {"text": f"call {n}"})) == [f"call {n}"]
        await wait_until(
            lambda: "stderr_flood call 2 done" in server.stderr_lines, message="the second burst"
        )

    startup = [line for line in server.stderr_lines if line.startswith("stderr_flood startup line ")]
    assert len(startup) == 20000
    assert [line.split()[3] for line in startup] == [f"{i:05d}/20000" for i in range(1, 20001)]
    for n in (1, 2):
        burst = [line for line in server.stderr_lines if line.startswith(f"stderr_flood call {n} line ")]
        assert len(burst) == 2000
    assert sum(len(line) + 1 for line in server.stderr_lines) > 1_000_000


async def test_stderr_flood_sizes_come_from_env() -> None:
    server = python_server(FIXTURES / "stderr_flood.py", STDERR_FLOOD_STARTUP="5", STDERR_FLOOD_PER_CALL="3")
    async with server:
        async with connect(server) as client:
            await client.call_tool("echo", {"text": "x"})
        await wait_until(lambda: "stderr_flood call 1 done" in server.stderr_lines, message="the burst")
    assert len([line for line in server.stderr_lines if "startup line" in line]) == 5
    assert len([line for line in server.stderr_lines if "call 1 line" in line]) == 3


# --- paginated -------------------------------------------------------------------------------

LONG_NAME = "a_tool_name_that_is_far_longer_than_the_sixty_four_characters_allowed"
PAGINATED_NAMES = [f"tool_{i:02d}" for i in range(1, 26)] + ["a.b", "x:y", "a_b", LONG_NAME]


@pytest.mark.parametrize(("mode", "page_size"), [("legacy", None), ("legacy", "10"), ("auto", None)])
async def test_paginated_lists_tools_over_several_requests(mode: str, page_size: str | None) -> None:
    env = {"PAGE_SIZE": page_size} if page_size else {}
    async with python_server(FIXTURES / "paginated.py", **env) as server:
        async with connect(server, mode) as client:
            names, requests = await list_all_tools(client)
            assert names == PAGINATED_NAMES
            assert requests == math.ceil(29 / int(page_size or 7))
            list_requests = [line for line in server.stderr_lines if line.startswith("paginated: tools/list")]
            assert len(list_requests) == requests
            assert list_requests[0] == "paginated: tools/list cursor=None"
    assert len(LONG_NAME) > 64


async def test_paginated_routes_odd_names_and_rejects_bad_cursor() -> None:
    async with python_server(FIXTURES / "paginated.py") as server:
        async with connect(server) as client:
            for name in ("a.b", "a_b", "x:y", LONG_NAME):
                result = await client.call_tool(name, {"value": "v"})
                assert texts(result) == [f'{name} called with {{"value": "v"}}']
            with pytest.raises(MCPError) as caught:
                await client.list_tools(cursor="not-a-cursor")
            assert caught.value.code == types.INVALID_PARAMS


# --- list_changed ----------------------------------------------------------------------------


async def test_list_changed_notifies_after_add_tool_on_2025_handshake() -> None:
    notifications: list[IncomingMessage] = []

    async def on_message(message: IncomingMessage) -> None:
        notifications.append(message)

    def list_changed_seen() -> bool:
        return any(isinstance(m, types.ToolListChangedNotification) for m in notifications)

    async with python_server(FIXTURES / "list_changed.py") as server:
        async with connect(server, message_handler=on_message) as client:
            assert client.server_capabilities.tools is not None
            assert client.server_capabilities.tools.list_changed is True
            assert [tool.name for tool in (await client.list_tools()).tools] == ["first", "add_tool"]
            assert not list_changed_seen()

            assert texts(await client.call_tool("add_tool", {})) == ["added second"]
            await wait_until(list_changed_seen, message="notifications/tools/list_changed")
            assert [tool.name for tool in (await client.list_tools()).tools] == [
                "first",
                "add_tool",
                "second",
            ]
            assert texts(await client.call_tool("second", {})) == ["second"]


async def test_list_changed_adds_second_by_itself_after_delay() -> None:
    seen = anyio.Event()

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            seen.set()

    async with python_server(FIXTURES / "list_changed.py", ADD_TOOL_AFTER="1.0") as server:
        async with connect(server, message_handler=on_message) as client:
            before = [tool.name for tool in (await client.list_tools()).tools]
            with anyio.fail_after(10):
                await seen.wait()
            after = [tool.name for tool in (await client.list_tools()).tools]
    assert before == ["first", "add_tool"]
    assert after == ["first", "add_tool", "second"]


async def test_list_changed_reaches_a_2026_listen_stream() -> None:
    async with python_server(FIXTURES / "list_changed.py") as server:
        async with connect(server, "auto") as client:
            assert client.protocol_version == MODERN
            async with client.listen(tools_list_changed=True) as subscription:
                await client.call_tool("add_tool", {})
                with anyio.fail_after(10):
                    event = await subscription.__anext__()
                assert isinstance(event, ToolsListChanged)
            assert "second" in [tool.name for tool in (await client.list_tools()).tools]


# --- slow_tool -------------------------------------------------------------------------------


async def test_slow_tool_sleeps_and_reports_progress() -> None:
    progress: list[tuple[float, float | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total))

    async with python_server(FIXTURES / "slow_tool.py") as server:
        async with connect(server) as client:
            with anyio.fail_after(10):
                result = await client.call_tool("sleep", {"seconds": 0.5}, progress_callback=on_progress)
    assert texts(result) == ["slept 0.5 seconds"]
    assert len(progress) >= 2
    assert progress[-1] == (pytest.approx(0.5), 0.5)


async def test_slow_tool_records_cancellation(tmp_path: Path) -> None:
    cancel_log = tmp_path / "cancelled.jsonl"
    async with python_server(FIXTURES / "slow_tool.py", CANCEL_LOG=str(cancel_log)) as server:
        async with connect(server) as client:
            async with anyio.create_task_group() as tg:

                async def call_and_get_cancelled() -> None:
                    await client.call_tool("sleep", {"seconds": 60})
                    pytest.fail("the call should have been cancelled")

                tg.start_soon(call_and_get_cancelled)
                await wait_until(
                    lambda: any("slow_tool: sleep 60 started" in line for line in server.stderr_lines),
                    message="the sleep call to start",
                )
                tg.cancel_scope.cancel()  # the SDK sends notifications/cancelled for the abandoned call

            lines = await wait_until(
                lambda: cancel_log.exists() and cancel_log.read_text().splitlines(), message="CANCEL_LOG line"
            )
            # The server is still usable after the cancel.
            assert texts(await client.call_tool("echo", {"text": "after"})) == ["after"]
    record = json.loads(lines[0])
    started = next(line for line in server.stderr_lines if "slow_tool: sleep 60 started" in line)
    assert f"(request {record['requestId']})" in started


# --- grandchild_wrapper ----------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _ignores_sighup(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), 16)
    return bool(mask & (1 << (signal.SIGHUP - 1)))


async def test_grandchild_wrapper_leaves_a_grandchild_in_its_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    async with python_server(FIXTURES / "grandchild_wrapper.py", GRANDCHILD_PID_FILE=str(pid_file)) as server:
        async with connect(server) as client:
            assert texts(await client.call_tool("echo", {"text": "wrapped"})) == ["wrapped"]
        grandchild = int(pid_file.read_text())
        assert _alive(grandchild)
        assert os.getpgid(grandchild) == server.pid  # same group as the wrapper (the group leader)
        assert psutil.Process(grandchild).ppid() == server.pid
        await wait_until(lambda: _ignores_sighup(grandchild), message="the grandchild to ignore SIGHUP")

        await server.close_stdin()
        assert await server.wait_exit(10) == 0  # the wrapper leaves ...
        assert _alive(grandchild)  # ... its grandchild does not
    # Leaving the StdioServer killed the whole group.
    wait_until_sync(lambda: not _alive(grandchild), timeout=5, message="the grandchild to be gone")


async def test_grandchild_wrapper_needs_its_pid_file_env() -> None:
    async with python_server(FIXTURES / "grandchild_wrapper.py") as server:
        assert await server.wait_exit(10) == 1
    assert any("set GRANDCHILD_PID_FILE" in line for line in server.stderr_lines)


# --- content_kinds ---------------------------------------------------------------------------


async def test_content_kinds_returns_every_kind() -> None:
    async with python_server(FIXTURES / "content_kinds.py") as server:
        async with connect(server) as client:
            text = (await client.call_tool("text", {})).content
            image = (await client.call_tool("image", {})).content
            audio = (await client.call_tool("audio", {})).content
            resource_text = (await client.call_tool("resource_text", {})).content
            resource_blob = (await client.call_tool("resource_blob", {})).content
            resource_link = (await client.call_tool("resource_link", {})).content
            all_kinds = (await client.call_tool("all_kinds", {})).content
            failed = await client.call_tool("fail", {})

    assert text == [types.TextContent(type="text", text="plain text result")]

    assert isinstance(image[0], types.ImageContent) and image[0].mime_type == "image/png"
    assert base64.b64decode(image[0].data).startswith(b"\x89PNG\r\n\x1a\n")

    assert isinstance(audio[0], types.AudioContent) and audio[0].mime_type == "audio/wav"
    wav = base64.b64decode(audio[0].data)
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"

    assert isinstance(resource_text[0], types.EmbeddedResource)
    assert resource_text[0].resource == types.TextResourceContents(
        uri="file:///fixture/notes.txt", mime_type="text/plain", text="notes from an embedded text resource"
    )

    assert isinstance(resource_blob[0], types.EmbeddedResource)
    blob = resource_blob[0].resource
    assert isinstance(blob, types.BlobResourceContents)
    assert blob.mime_type == "application/octet-stream" and base64.b64decode(blob.blob) == bytes(range(256))

    link = resource_link[0]
    assert isinstance(link, types.ResourceLink)
    assert (link.uri, link.name, link.mime_type) == (
        "file:///fixture/report.pdf",
        "report.pdf",
        "application/pdf",
    )
    assert link.description

    assert [block.type for block in all_kinds] == [
        "text",
        "image",
        "audio",
        "resource",
        "resource",
        "resource_link",
    ]
    assert failed.is_error is True and texts(failed) == ["this tool failed on purpose"]


async def test_content_kinds_structured_output_and_mismatch() -> None:
    async with python_server(FIXTURES / "content_kinds.py") as server:
        async with connect(server) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            schema = tools["structured_mismatch"].output_schema
            assert schema is not None and schema == tools["structured"].output_schema

            good = await client.call_tool("structured", {})
            assert good.structured_content == {"temperature": 21.5, "unit": "celsius"}
            jsonschema.validate(good.structured_content, schema)

            # The SDK client refuses it; a proxy must pass it through instead.
            with pytest.raises(RuntimeError, match="Invalid structured content"):
                await client.call_tool("structured_mismatch", {})

    # What the server really sent for that call.
    answers = [json.loads(line) for line in server.stdout_lines]
    mismatched = [
        m["result"]["structuredContent"] for m in answers if m.get("result", {}).get("structuredContent")
    ]
    assert mismatched[-1] == {"temperature": "warm", "unit": "celsius"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(mismatched[-1], schema)


# --- huge_result -----------------------------------------------------------------------------


@pytest.mark.parametrize("id_last", [False, True])
async def test_huge_result_answers_in_one_line_of_the_size_asked(id_last: bool) -> None:
    server = python_server(FIXTURES / "huge_result.py", **({"ID_LAST": "1"} if id_last else {}))
    async with server:
        async with connect(server) as client:
            result = await client.session.call_tool("huge", {"bytes": 3_000_000})
            assert texts(result) == ["x" * 3_000_000]
            noisy = await client.session.call_tool("noisy", {"bytes": 2_000_000})
            assert texts(noisy) == ["after the noise"]
    [answer, notification] = [line for line in server.stdout_lines if len(line) > 2_000_000]
    # Where the id is: after the result (the TypeScript SDK's order) or before it (Python's).
    assert answer.startswith('{"result":') is id_last
    assert answer.startswith('{"jsonrpc":"2.0","id":') is not id_last
    assert json.loads(answer)["result"]["content"][0]["text"] == "x" * 3_000_000
    assert json.loads(notification)["method"] == "notifications/message"


# --- print_env -------------------------------------------------------------------------------


async def test_print_env_shows_its_environment_and_arguments() -> None:
    server = StdioServer([sys.executable, FIXTURES / "print_env.py", "one", "two"], env={"MARK": "m1"})
    async with server:
        async with connect(server) as client:
            shown = json.loads(texts(await client.session.call_tool("environment", {}))[0])
    assert shown["env"]["MARK"] == "m1" and shown["argv"] == ["one", "two"]


# --- every normal fixture also speaks 2026-07-28 ---------------------------------------------


@pytest.mark.parametrize(
    ("script", "tool", "arguments", "expected"),
    [
        ("crash_during_call.py", "echo", {"text": "hi"}, "hi"),
        ("garbage_stdout.py", "echo", {"text": "hi"}, "hi"),
        ("stderr_flood.py", "echo", {"text": "hi"}, "hi"),
        ("paginated.py", "tool_01", {}, "tool_01 called with {}"),
        ("list_changed.py", "first", {}, "first"),
        ("slow_tool.py", "sleep", {"seconds": 0}, "slept 0 seconds"),
        ("content_kinds.py", "text", {}, "plain text result"),
        ("print_env.py", "echo", {"text": "hi"}, "hi"),
    ],
)
async def test_fixtures_work_with_a_client_in_auto_mode(
    script: str, tool: str, arguments: dict[str, Any], expected: str, tmp_path: Path
) -> None:
    async with python_server(FIXTURES / script) as server:
        async with connect(server, "auto") as client:
            assert client.protocol_version == MODERN
            assert texts(await client.call_tool(tool, arguments)) == [expected]


async def test_grandchild_wrapper_works_in_auto_mode(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    async with python_server(FIXTURES / "grandchild_wrapper.py", GRANDCHILD_PID_FILE=str(pid_file)) as server:
        async with connect(server, "auto") as client:
            assert client.protocol_version == MODERN
            assert texts(await client.call_tool("echo", {"text": "hi"})) == ["hi"]
        grandchild = int(pid_file.read_text())
    wait_until_sync(lambda: not _alive(grandchild), timeout=5, message="the grandchild to be gone")


@pytest.mark.parametrize("script", ["paginated.py", "list_changed.py"])
async def test_fixture_era_legacy_plays_a_2025_server(script: str) -> None:
    """FIXTURE_ERA=legacy: `server/discover` is refused, so an auto client falls back to initialize."""
    async with python_server(FIXTURES / script, FIXTURE_ERA="legacy") as server:
        async with connect(server, "auto") as client:
            assert client.protocol_version != MODERN
            assert (await client.list_tools()).tools
    discover = next(m for m in server.sent if m.get("method") == "server/discover")
    answer = next(
        json.loads(line) for line in server.stdout_lines if json.loads(line).get("id") == discover["id"]
    )
    assert answer["error"]["code"] == types.METHOD_NOT_FOUND


# --- server-everything -----------------------------------------------------------------------


async def _check_everything(client: Client) -> None:
    names = [tool.name for tool in (await client.list_tools()).tools]
    assert "echo" in names
    result = await client.call_tool("echo", {"message": "hello"})
    assert texts(result) == ["Echo: hello"]


async def test_everything_over_stdio(everything_bin: Path) -> None:
    async with StdioServer([everything_bin, "stdio"]) as server:
        async with connect(server, "legacy") as client:
            await _check_everything(client)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_everything_over_streamable_http(everything_http_url: str, mode: str) -> None:
    async with Client(everything_http_url, mode=mode, cache=None) as client:
        assert client.protocol_version != MODERN  # a 2025-era server: auto falls back to initialize
        await _check_everything(client)


async def test_everything_over_sse(everything_sse_url: str) -> None:
    async with Client(sse_client(everything_sse_url), mode="legacy", cache=None) as client:
        await _check_everything(client)
