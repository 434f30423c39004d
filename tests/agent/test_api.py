"""The agent's HTTP API contract: auth, errors, listing, ETag (spec/agent.md §4)."""

from __future__ import annotations

import json

import httpx2

from tests.support import raw_http
from tests.support.agent import TOKEN, fixture_server


def test_every_endpoint_but_healthz_needs_the_token(start_agent) -> None:
    agent = start_agent({})
    anonymous = httpx2.Client(base_url=agent.url)
    wrong = httpx2.Client(base_url=agent.url, headers={"Authorization": "Bearer not-the-token"})
    assert anonymous.get("/healthz").json() == {"status": "ok"}
    for client in (anonymous, wrong):
        for method, path in [
            ("GET", "/api/v0/mcp/tools"),
            ("GET", "/api/v0/mcp/servers"),
            ("POST", "/api/v0/mcp/call-tool"),
            ("GET", "/openapi.json"),
        ]:
            response = client.request(method, path, json={"tool_name": "x"})
            assert response.status_code == 401, (method, path)
            assert set(response.json()) == {"message", "detail"}
    assert agent.http.get("/openapi.json").json()["paths"]["/api/v0/mcp/call-tool"]


def test_with_no_servers_the_tool_list_is_empty_not_null(start_agent) -> None:
    agent = start_agent({})
    body = agent.tools()
    assert body["tools"] == [] and isinstance(body["version"], str)
    assert agent.http.get("/api/v0/mcp/servers").json()["config_files"][0]["state"] == "loaded"


def test_tool_entries_have_coder_fields_and_the_whole_schema(start_agent) -> None:
    agent = start_agent({"kinds": fixture_server("content_kinds.py")})
    agent.wait_state("kinds", "ready")
    tools = agent.tools()["tools"]
    assert [t["name"] for t in tools] == sorted(t["name"] for t in tools)
    structured = next(t for t in tools if t["original_name"] == "structured")
    assert structured["name"] == "kinds__structured" and structured["server_name"] == "kinds"
    assert structured["output_schema"]["type"] == "object"
    assert structured["schema"] == structured["input_schema"].get("properties", {})
    assert structured["required"] == structured["input_schema"].get("required", [])
    assert set(structured) == {
        "server_name",
        "name",
        "original_name",
        "description",
        "schema",
        "required",
        "input_schema",
        "output_schema",
        "annotations",
    }


def test_etag_is_the_catalog_version_and_if_none_match_gives_304(start_agent) -> None:
    agent = start_agent({"kinds": fixture_server("content_kinds.py")})
    agent.wait_state("kinds", "ready")
    first = agent.http.get("/api/v0/mcp/tools")
    version = first.json()["version"]
    assert first.headers["etag"] == f'"{version}"'
    for sent in (f'"{version}"', version, f'W/"{version}"', f'"other", "{version}"'):
        again = agent.http.get("/api/v0/mcp/tools", headers={"If-None-Match": sent})
        assert again.status_code == 304 and again.content == b""
    stale = agent.http.get("/api/v0/mcp/tools", headers={"If-None-Match": '"0"'})
    assert stale.status_code == 200 and stale.json()["version"] == version


def test_call_tool_bad_requests_are_400_with_a_reason(start_agent) -> None:
    agent = start_agent({})
    cases = [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b"{}", "tool_name"),
        (b'{"tool_name": 5}', "tool_name"),
        (b'{"tool_name": "x", "arguments": [1]}', "arguments"),
        (b'{"tool_name": "x", "timeout_ms": 0}', "timeout_ms"),
        (b'{"tool_name": "x", "timeout_ms": 600001}', "timeout_ms"),
        (b'{"tool_name": "x", "timeout_ms": "100"}', "timeout_ms"),
        (b'{"tool_name": "x", "timeout_ms": 1.5}', "timeout_ms"),
        (b'{"tool_name": "x", "timeout_ms": true}', "timeout_ms"),
    ]
    for body, reason in cases:
        response = agent.http.post(
            "/api/v0/mcp/call-tool", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, body
        assert reason in response.json()["message"], (body, response.json())


def test_unknown_tool_is_404_saying_so(start_agent) -> None:
    agent = start_agent({})
    response = agent.call("nope__nothing")
    assert response.status_code == 404
    assert "nope__nothing" in response.json()["message"]


def test_healthz_needs_no_token_and_token_comparison_rejects_prefixes(start_agent) -> None:
    agent = start_agent({})
    prefix = httpx2.Client(base_url=agent.url, headers={"Authorization": f"Bearer {TOKEN[:-1]}"})
    assert prefix.get("/api/v0/mcp/tools").status_code == 401
    assert httpx2.get(f"{agent.url}/healthz").status_code == 200


# The plain call-tool's happy path is answered by the agent's HTTP protocol itself
# (agent/fast_call.py); a query string sends the same request through the ASGI route instead.
VIA_ASGI = "/api/v0/mcp/call-tool?via=asgi"


def test_a_plain_call_is_answered_alike_by_the_protocol_and_the_asgi_route(start_agent) -> None:
    agent = start_agent(
        {"slow": fixture_server("slow_tool.py")}, env={"WORKDOCK_AGENT_MAX_REQUEST_BYTES": "4096"}
    )
    agent.wait_state("slow", "ready")
    echo = json.dumps({"tool_name": "slow__echo", "arguments": {"text": "héllo"}}).encode()
    timed_out = json.dumps({"tool_name": "slow__sleep", "arguments": {"seconds": 5}, "timeout_ms": 100})
    cases = {
        "ok": (echo, {}, 200),
        "no arguments": (b'{"tool_name": "slow__echo"}', {}, 200),
        "unknown tool": (b'{"tool_name": "nope__nothing"}', {}, 404),
        "bad JSON": (b"{not json", {}, 400),
        "bad field": (b'{"tool_name": "slow__echo", "timeout_ms": 0}', {}, 400),
        "timed out upstream": (timed_out.encode(), {}, 504),
        "too large": (b'{"tool_name": "slow__echo", "arguments": {"text": "' + b"x" * 5000 + b'"}}', {}, 413),
        "no token": (echo, {"token": None}, 401),
    }
    for name, (body, options, status) in cases.items():
        answers = []
        for target in ("/api/v0/mcp/call-tool", VIA_ASGI):
            with raw_http.Connection(agent.port) as conn:
                conn.send(raw_http.request("POST", target, body, **options))
                answers.append(conn.read())
        fast, asgi = answers
        assert fast.status == asgi.status == status, (name, fast, asgi)
        assert fast.body == asgi.body, name
        # The same headers in the same order (uvicorn's date and server included), but the date.
        assert [h for h in fast.headers if h[0] != "date"] == [h for h in asgi.headers if h[0] != "date"], (
            name
        )
        assert fast.header("date") and fast.header("server") == "uvicorn"
        assert set(fast.json()) == (
            {"content", "is_error", "structured_content"} if status == 200 else {"message", "detail"}
        )
    assert agent.call("slow__echo", {"text": "héllo"}).json()["content"][0]["text"] == "héllo"


def test_keep_alive_pipelining_connection_close_and_http_1_0(start_agent) -> None:
    agent = start_agent({"slow": fixture_server("slow_tool.py")})
    agent.wait_state("slow", "ready")

    def text(answer: raw_http.Answer) -> str:
        assert answer.status == 200, answer
        return answer.json()["content"][0]["text"]

    # Keep-alive: one call after another on one connection, which stays open.
    with raw_http.Connection(agent.port) as conn:
        for n in range(4):
            conn.send(raw_http.call("slow__echo", {"text": f"call {n}"}))
            answer = conn.read()
            assert text(answer) == f"call {n}" and answer.header("connection") is None

    # Pipelined: requests written at once are answered in order, a slow first one included,
    # and whichever path each takes (a catalog read and a bad body among them).
    with raw_http.Connection(agent.port) as conn:
        conn.send(
            raw_http.call("slow__sleep", {"seconds": 0.5})
            + raw_http.call("slow__echo", {"text": "second"})
            + raw_http.request("GET", "/api/v0/mcp/tools")
            + raw_http.request("POST", "/api/v0/mcp/call-tool", b"[]")
            + raw_http.call("slow__echo", {"text": "fifth"})
        )
        first, second, tools, bad, fifth = conn.read_many(5)
        assert text(first) == "slept 0.5 seconds" and text(second) == "second"
        assert tools.status == 200 and "slow__echo" in [t["name"] for t in tools.json()["tools"]]
        assert bad.status == 400 and "JSON object" in bad.json()["message"]
        assert text(fifth) == "fifth"
        conn.send(raw_http.call("slow__echo", {"text": "later"}))
        assert text(conn.read()) == "later"

    # Connection: close, and HTTP/1.0 (no keep-alive): answered, then the agent closes.
    for options in ({"headers": {"Connection": "close"}}, {"version": "1.0"}):
        with raw_http.Connection(agent.port) as conn:
            conn.send(raw_http.call("slow__echo", {"text": "bye"}, **options))
            answer = conn.read()
            assert text(answer) == "bye" and answer.header("connection") == "close", options
            assert conn.at_eof(), options
