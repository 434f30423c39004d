"""The agent's HTTP API contract: auth, errors, listing, ETag (spec/agent.md §4)."""

from __future__ import annotations

import httpx2

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
