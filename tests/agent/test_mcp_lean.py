"""``/mcp``'s lean path: a plain ``tools/call`` on an established session is answered as JSON
without the SDK's session machinery; these tests drive it with raw MCP over HTTP (what any client
sends) against real fixture servers, and compare it with what the SDK's path answers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest

from tests.agent.test_mcp_endpoint import INITIALIZE
from tests.support.agent import TOKEN, RunningAgent, fixture_server
from tests.support.helpers import wait_until
from workdock.agent.runtime import MAX_MCP_SESSIONS_ENV, MAX_REQUEST_BYTES_ENV

pytestmark = pytest.mark.anyio

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class Session:
    """One handshake-era session spoken by hand: every answer is seen as it came."""

    def __init__(self, http: httpx2.AsyncClient, path: str = "/mcp") -> None:
        self.http, self.path = http, path
        self.headers = dict(ACCEPT)
        self.next_id = 0

    async def open(self, capabilities: dict[str, Any] | None = None, *, initialized: bool = True) -> None:
        params = {
            "protocolVersion": "2025-06-18",
            "capabilities": capabilities or {},
            "clientInfo": {"name": "test", "version": "1"},
        }
        opened = await self.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
        assert opened.status_code == 200, opened.text
        self.headers["Mcp-Session-Id"] = opened.headers["mcp-session-id"]
        self.headers["MCP-Protocol-Version"] = "2025-06-18"
        if initialized:
            done = await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
            assert done.status_code == 202, done.text

    async def post(self, message: dict[str, Any]) -> httpx2.Response:
        return await self.http.post(self.path, content=json.dumps(message), headers=self.headers)

    def request(self, name: str, arguments: dict[str, Any], **params: Any) -> dict[str, Any]:
        self.next_id += 1
        return {
            "jsonrpc": "2.0",
            "id": self.next_id,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments, **params},
        }

    async def call(self, name: str, arguments: dict[str, Any], **params: Any) -> tuple[str, dict[str, Any]]:
        """(the answer's content type, the JSON-RPC answer to this request)."""
        request = self.request(name, arguments, **params)
        response = await self.post(request)
        return _kind(response), answer_of(response, request["id"])


class ModernClient:
    """2026-07-28 requests spoken by hand: each POST carries its own envelope and headers."""

    def __init__(self, http: httpx2.AsyncClient, capabilities: dict[str, Any]) -> None:
        self.http, self.capabilities = http, capabilities
        self.next_id = 0

    async def call(self, name: str, arguments: dict[str, Any], **headers: str) -> httpx2.Response:
        self.next_id += 1
        meta = {
            types.PROTOCOL_VERSION_META_KEY: "2026-07-28",
            types.CLIENT_CAPABILITIES_META_KEY: self.capabilities,
            types.CLIENT_INFO_META_KEY: {"name": "test", "version": "1"},
        }
        body = {
            "jsonrpc": "2.0",
            "id": self.next_id,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments, "_meta": meta},
        }
        sent = {
            **ACCEPT,
            "MCP-Protocol-Version": "2026-07-28",
            "Mcp-Method": "tools/call",
            "Mcp-Name": name,
            **headers,
        }
        return await self.http.post("/mcp", content=json.dumps(body), headers=sent)


def _kind(response: httpx2.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0]


def answer_of(response: httpx2.Response, request_id: int) -> dict[str, Any]:
    assert response.status_code == 200, (response.status_code, response.text)
    if _kind(response) == "application/json":
        messages = [response.json()]
    else:
        messages = [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]
    return next(m for m in messages if m.get("id") == request_id)


@asynccontextmanager
async def session(agent: RunningAgent, path: str = "/mcp", **capabilities: Any) -> AsyncIterator[Session]:
    async with httpx2.AsyncClient(
        base_url=agent.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    ) as http:
        opened = Session(http, path)
        await opened.open(capabilities)
        yield opened


@pytest.fixture
def slow_agent(start_agent, tmp_path: Path) -> RunningAgent:
    agent = start_agent(
        {
            "slow": fixture_server("slow_tool.py", CANCEL_LOG=str(tmp_path / "cancelled.jsonl")),
            "kinds": fixture_server("content_kinds.py"),
        }
    )
    agent.wait_state("slow", "ready")
    agent.wait_state("kinds", "ready")
    return agent


def _cancelled(tmp_path: Path) -> list[dict[str, Any]]:
    log = tmp_path / "cancelled.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _sleep_started(agent: RunningAgent, seconds: int) -> bool:
    return any(f"sleep {seconds} started" in line for line in agent.server("slow")["stderr_tail"])


async def test_a_plain_call_is_answered_as_json_with_what_the_sdk_path_answers(slow_agent) -> None:
    agent = slow_agent
    async with session(agent) as lean, session(agent, elicitation={}) as asked:
        for name in ["kinds__all_kinds", "kinds__structured", "kinds__structured_mismatch", "kinds__fail"]:
            kind, answer = await lean.call(name, {})
            assert kind == "application/json", name
            # A client that can be asked goes through the SDK (an SSE stream): the same result.
            sdk_kind, sdk_answer = await asked.call(name, {})
            assert sdk_kind == "text/event-stream", name
            # The lean path answers from call-tool's body: the upstream result's _meta (here the
            # upstream's serverInfo) is not in it; everything else is the same.
            sdk_answer["result"].pop("_meta", None)
            assert answer["result"] == sdk_answer["result"], name
        # A progress token takes the SDK's path (progress rides its SSE stream).
        kind, answer = await lean.call("slow__echo", {"text": "hi"}, _meta={"progressToken": "p1"})
        assert kind == "text/event-stream" and answer["result"]["content"][0]["text"] == "hi"


async def test_a_call_sent_before_initialized_is_handled_is_answered_the_lean_way(slow_agent) -> None:
    # The 202 to notifications/initialized reaches a client before the SDK has handled it, so a
    # call sent at once may come first; the SDK takes calls from initialize's answer on, and so
    # does the lean path (here the notification is never sent: that order, every time).
    async with httpx2.AsyncClient(
        base_url=slow_agent.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    ) as http:
        early = Session(http)
        await early.open(initialized=False)
        kind, answer = await early.call("slow__echo", {"text": "early"})
        assert kind == "application/json"
        assert answer["result"]["content"][0]["text"] == "early"


async def test_many_concurrent_calls_on_one_session_get_their_own_answers(slow_agent) -> None:
    agent = slow_agent
    answers: dict[int, tuple[str, dict[str, Any]]] = {}
    async with session(agent) as lean:
        requests = [lean.request("slow__echo", {"text": f"call {i}"}) for i in range(40)]

        async def one(request: dict[str, Any]) -> None:
            response = await lean.post(request)
            answers[request["id"]] = (_kind(response), answer_of(response, request["id"]))

        async with anyio.create_task_group() as tg:
            for request in requests:
                tg.start_soon(one, request)
    assert len(answers) == 40
    for request in requests:
        kind, answer = answers[request["id"]]
        assert kind == "application/json"
        assert answer["result"]["content"] == [
            {"type": "text", "text": request["params"]["arguments"]["text"]}
        ]


async def test_errors_are_the_json_rpc_errors_the_sdk_path_gives(slow_agent) -> None:
    agent = slow_agent
    async with session(agent) as lean, session(agent, elicitation={}) as asked:
        for name in ["slow__nope", "nope"]:
            kind, answer = await lean.call(name, {})
            _, sdk_answer = await asked.call(name, {})
            assert kind == "application/json"
            assert answer["error"] == sdk_answer["error"], name
            assert answer["error"]["code"] == types.INVALID_PARAMS and name in answer["error"]["message"]
    # /mcp/SERVER: names as the server gives them, an unknown one refused as the gateway refuses it
    async with session(agent, "/mcp/slow") as lean, session(agent, "/mcp/slow", elicitation={}) as asked:
        kind, answer = await lean.call("echo", {"text": "fronted"})
        assert kind == "application/json" and answer["result"]["content"][0]["text"] == "fronted"
        _, missing = await lean.call("slow__echo", {})
        _, sdk_missing = await asked.call("slow__echo", {})
        assert missing["error"] == sdk_missing["error"]
        assert missing["error"]["code"] == types.INVALID_PARAMS


def _sized(error: dict[str, Any]) -> dict[str, Any]:
    """``error`` with the message's byte count of the dropped message left out."""
    return {
        **error,
        "message": re.sub(r"a message of [\d,]+ bytes", "a message of N bytes", error["message"]),
    }


async def test_a_timeout_an_oversize_result_and_a_dead_server_are_the_gateways_errors(start_agent) -> None:
    slow = {**fixture_server("slow_tool.py"), "timeout": 1000}
    servers = {
        "slow": slow,
        "crashy": fixture_server("crash_during_call.py"),
        "big": fixture_server("huge_result.py"),
    }
    agent = start_agent(servers, "--max-result-bytes", str(64 * 1024))
    for name in servers:
        agent.wait_state(name, "ready")
    async with session(agent) as lean, session(agent, elicitation={}) as asked:
        kind, oversize = await lean.call("big__huge", {"bytes": 200_000})
        _, sdk_oversize = await asked.call("big__huge", {"bytes": 200_000})
        # The same error; the size it names is of the server's whole message, whose request id
        # differs between the two paths (a stdio call's fast lane has string ids).
        assert kind == "application/json" and _sized(oversize["error"]) == _sized(sdk_oversize["error"])
        assert oversize["error"]["code"] == types.INTERNAL_ERROR and "big" in oversize["error"]["message"]
        kind, answer = await lean.call("slow__sleep", {"seconds": 30})
        assert kind == "application/json"
        assert answer["error"]["code"] == types.REQUEST_TIMEOUT, answer
        _, sdk_answer = await asked.call("slow__sleep", {"seconds": 30})
        assert answer["error"] == sdk_answer["error"]
        _, died = await lean.call("crashy__crash", {})
        assert died["error"]["code"] == types.INTERNAL_ERROR and "crashy" in died["error"]["message"]


async def test_notifications_cancelled_for_a_lean_call_reaches_the_upstream_server(
    slow_agent, tmp_path: Path
) -> None:
    agent = slow_agent
    async with session(agent) as lean:
        request = lean.request("slow__sleep", {"seconds": 60})
        answered: list[httpx2.Response] = []

        async def call() -> None:
            answered.append(await lean.post(request))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await wait_until(lambda: _sleep_started(agent, 60), timeout=30)
            cancel = {
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": request["id"], "reason": "changed my mind"},
            }
            accepted = await lean.post(cancel)
            assert accepted.status_code == 202
        await wait_until(lambda: _cancelled(tmp_path), timeout=30)
        # The call's POST is answered (an error the client ignores: it cancelled it), not left hanging.
        assert answer_of(answered[0], request["id"])["error"]["code"] == -32800
        kind, answer = await lean.call("slow__echo", {"text": "still here"})
        assert kind == "application/json" and answer["result"]["content"][0]["text"] == "still here"


async def test_a_client_that_hangs_up_during_a_lean_call_cancels_it_upstream(
    slow_agent, tmp_path: Path
) -> None:
    agent = slow_agent
    async with session(agent) as lean:
        request = lean.request("slow__sleep", {"seconds": 60})
        async with anyio.create_task_group() as tg:
            tg.start_soon(lean.post, request)
            await wait_until(lambda: _sleep_started(agent, 60), timeout=30)
            tg.cancel_scope.cancel()  # the POST's connection is dropped
        await wait_until(lambda: _cancelled(tmp_path), timeout=30)
        kind, answer = await lean.call("slow__echo", {"text": "after"})
        assert kind == "application/json" and answer["result"]["content"][0]["text"] == "after"


async def test_an_unknown_or_foreign_session_is_refused_as_the_sdk_refuses_it(slow_agent) -> None:
    agent = slow_agent
    async with session(agent) as lean:
        lean.headers["Mcp-Session-Id"] = "0" * 32
        response = await lean.post(lean.request("slow__echo", {"text": "x"}))
        assert response.status_code == 404


async def test_a_2026_call_is_answered_as_the_sdk_answers_it(slow_agent) -> None:
    agent = slow_agent
    async with httpx2.AsyncClient(
        base_url=agent.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    ) as http:
        lean, asked = ModernClient(http, {}), ModernClient(http, {"elicitation": {}})
        cases: list[tuple[str, dict[str, Any], dict[str, str]]] = [
            ("kinds__all_kinds", {}, {}),
            ("kinds__structured", {}, {}),
            ("kinds__fail", {}, {}),
            ("slow__echo", {"text": "modern"}, {}),
            ("slow__nope", {}, {}),
            ("slow__echo", {"text": "x"}, {"Mcp-Name": "slow__other"}),  # a header that disagrees
        ]
        for name, arguments, headers in cases:
            answer = await lean.call(name, arguments, **headers)
            sdk_answer = await asked.call(name, arguments, **headers)
            assert answer.status_code == sdk_answer.status_code, (name, answer.text, sdk_answer.text)
            ours, theirs = answer.json(), sdk_answer.json()
            if "result" in theirs:
                theirs["result"].pop("_meta", None)  # the upstream's, not in call-tool's body
            assert ours == theirs, name
        # an answer of its own to each of many calls at once
        answers: dict[str, str] = {}

        async def one(i: int) -> None:
            response = await lean.call("slow__echo", {"text": f"modern {i}"})
            answers[f"modern {i}"] = response.json()["result"]["content"][0]["text"]

        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(one, i)
        assert answers == {text: text for text in answers} and len(answers) == 30


def test_an_over_limit_body_gets_the_one_error_shape_with_or_without_a_length(start_agent) -> None:
    agent = start_agent({"slow": fixture_server("slow_tool.py")}, env={MAX_REQUEST_BYTES_ENV: "4096"})
    big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * 8000}}).encode()

    def chunks() -> Any:
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    with httpx2.Client(base_url=agent.url, headers={"Authorization": f"Bearer {TOKEN}", **ACCEPT}) as http:
        for body in (big, chunks()):
            refused = http.post("/mcp", content=body)
            assert refused.status_code == 413
            assert refused.headers["content-type"] == "application/json"
            assert refused.json() == {
                "message": "request body too large",
                "detail": "the limit is 4096 bytes",
            }
        # a body within the limit is served
        initialize = INITIALIZE
        assert http.post("/mcp", json=initialize).status_code == 200


async def test_sessions_past_the_limit_are_refused_until_one_ends(start_agent) -> None:
    agent = start_agent({"slow": fixture_server("slow_tool.py")}, env={MAX_MCP_SESSIONS_ENV: "2"})
    agent.wait_state("slow", "ready")
    async with httpx2.AsyncClient(
        base_url=agent.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    ) as http:
        first, second, third = Session(http), Session(http), Session(http)
        await first.open()
        await second.open()
        refused = await third.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}})
        assert refused.status_code == 503, refused.text
        assert "Too many open sessions" in refused.json()["error"]["message"]
        # The open sessions go on working, the lean way.
        result = {"content": [{"type": "text", "text": "open"}], "isError": False}
        assert await second.call("slow__echo", {"text": "open"}) == (
            "application/json",
            {"jsonrpc": "2.0", "id": 1, "result": result},
        )
        ended = await http.delete("/mcp", headers=first.headers)
        assert ended.status_code in (200, 204), ended.text
        await third.open()  # room again
        kind, answer = await third.call("slow__echo", {"text": "third"})
        assert kind == "application/json" and answer["result"]["content"][0]["text"] == "third"


def test_a_session_limit_that_is_not_a_positive_number_stops_the_agent_at_start(workspace_dir: Path) -> None:
    command = ["agent", "--dir", str(workspace_dir), "--listen", "127.0.0.1:0"]
    started = subprocess.run(
        [sys.executable, "-m", "workdock.cli", *command],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "WORKDOCK_AGENT_TOKEN": TOKEN, MAX_MCP_SESSIONS_ENV: "0"},
    )
    assert started.returncode != 0
    assert f"{MAX_MCP_SESSIONS_ENV} must be a positive number of sessions, got '0'" in started.stderr
