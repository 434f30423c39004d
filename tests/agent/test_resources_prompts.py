"""Resources, resource templates and prompts through the agent's API over real HTTP."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.support.agent import RunningAgent, fixture_server, node_server

ERAS = {"modern": {}, "legacy": {"FIXTURE_ERA": "legacy"}}


def _get(agent: RunningAgent, path: str, **headers: str) -> Any:
    response = agent.http.get(f"/api/v0/mcp/{path}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("era", ERAS)
def test_resources_templates_and_prompts_are_listed_to_the_last_page(start_agent, era: str) -> None:
    agent = start_agent({"fx": fixture_server("offerings.py", **ERAS[era])})
    status = agent.wait_state("fx", "ready")
    assert (status["protocol_version"] == "2026-07-28") == (era == "modern")
    resources = _get(agent, "resources")["resources"]
    uris = [r["uri"] for r in resources]
    # 6 resources at 2 a page: three pages followed, sorted by URI
    assert uris == sorted([f"fixture://doc/{n}" for n in range(1, 6)] + ["fixture://blob"])
    blob = next(r for r in resources if r["uri"] == "fixture://blob")
    assert (
        blob["server_name"] == "fx" and blob["mime_type"] == "application/octet-stream" and blob["size"] == 16
    )
    assert all(r["id"].startswith("fx__") and len(r["id"]) <= 64 for r in resources)
    assert len({r["id"] for r in resources}) == len(resources)
    templates = _get(agent, "resource-templates")["resource_templates"]
    assert templates == [
        {
            "server_name": "fx",
            "uri_template": "fixture://note/{name}",
            "name": "note",
            "title": None,
            "description": None,
            "mime_type": "text/plain",
        }
    ]
    prompts = {p["original_name"]: p for p in _get(agent, "prompts")["prompts"]}
    assert set(prompts) == {"greet", "review.code"}  # one a page: both pages followed
    assert prompts["greet"]["name"] == "fx__greet"
    assert prompts["greet"]["arguments"] == [
        {"name": "name", "description": "who to greet", "required": True}
    ]
    assert prompts["review.code"]["name"] == "fx__review_code"  # '.' is refused by LLM APIs
    assert "prompt 'review.code' offered as 'fx__review_code'" in agent.server("fx")["warnings"]


@pytest.mark.parametrize("era", ERAS)
def test_read_resource_and_get_prompt(start_agent, era: str) -> None:
    agent = start_agent({"fx": fixture_server("offerings.py", **ERAS[era])})
    agent.wait_state("fx", "ready")
    read = agent.http.post("/api/v0/mcp/read-resource", json={"uri": "fixture://doc/3"})
    assert read.status_code == 200, read.text
    assert read.json() == {
        "server_name": "fx",
        "uri": "fixture://doc/3",
        "contents": [
            {"type": "resource", "uri": "fixture://doc/3", "media_type": "text/plain", "text": "document 3"}
        ],
    }
    blob = agent.http.post("/api/v0/mcp/read-resource", json={"uri": "fixture://blob", "server": "fx"}).json()
    assert base64.b64decode(blob["contents"][0]["data"]) == bytes(range(16))
    # a template's URI is routed to the server whose template it fits
    note = agent.http.post("/api/v0/mcp/read-resource", json={"uri": "fixture://note/abc"}).json()
    assert note["contents"][0]["text"] == "note abc"
    # the offered id routes too
    listed = _get(agent, "resources")["resources"]
    doc2 = next(r for r in listed if r["uri"] == "fixture://doc/2")
    by_id = agent.http.post("/api/v0/mcp/read-resource", json={"uri": doc2["id"]}).json()
    assert by_id["contents"][0]["text"] == "document 2"

    prompt = agent.http.post(
        "/api/v0/mcp/get-prompt", json={"name": "fx__greet", "arguments": {"name": "Ada"}}
    )
    assert prompt.status_code == 200, prompt.text
    assert prompt.json() == {
        "name": "fx__greet",
        "server_name": "fx",
        "description": "A greeting",
        "messages": [{"role": "user", "content": {"type": "text", "text": "Hello, Ada!"}}],
    }
    review = agent.http.post("/api/v0/mcp/get-prompt", json={"name": "fx__review_code"}).json()
    assert [m["role"] for m in review["messages"]] == ["user", "assistant"]
    assert review["messages"][1]["content"] == {
        "type": "resource",
        "uri": "fixture://doc/1",
        "media_type": "text/plain",
        "text": "document 1",
    }


def test_errors_have_call_tools_statuses(start_agent) -> None:
    agent = start_agent({"fx": fixture_server("offerings.py"), "fy": fixture_server("offerings.py")})
    agent.wait_state("fx", "ready")
    agent.wait_state("fy", "ready")

    def post(path: str, body: Any) -> tuple[int, str]:
        response = agent.http.post(f"/api/v0/mcp/{path}", json=body)
        assert set(response.json()) == {"message", "detail"}, response.text
        return response.status_code, response.json()["message"] + str(response.json()["detail"])

    for body in ({}, {"uri": ""}, {"uri": 5}, {"uri": "x", "server": 3}, {"uri": "x", "timeout_ms": 0}, [1]):
        assert post("read-resource", body)[0] == 400, body
    for body in (
        {},
        {"name": "fx__greet", "arguments": {"name": 1}},
        {"name": "fx__greet", "arguments": [1]},
    ):
        assert post("get-prompt", body)[0] == 400, body
    # two servers offer the URI: name one
    status, message = post("read-resource", {"uri": "fixture://doc/1"})
    assert status == 400 and "fx, fy" in message
    assert post("read-resource", {"uri": "nothing://here"})[0] == 404
    assert post("read-resource", {"uri": "x://y", "server": "nobody"})[0] == 404
    status, message = post("read-resource", {"uri": "fixture://doc/99", "server": "fx"})
    assert status == 404 and "fixture://doc/99" in message  # the server's own "not found"
    assert post("get-prompt", {"name": "fx__nothing"})[0] == 404
    status, message = post("get-prompt", {"name": "fx__greet"})  # the server refuses: no argument
    assert status == 502 and "name" in message


def test_read_resource_reaches_the_named_server(start_agent) -> None:
    agent = start_agent({"fx": fixture_server("offerings.py"), "fy": fixture_server("offerings.py")})
    agent.wait_state("fx", "ready")
    agent.wait_state("fy", "ready")
    response = agent.http.post("/api/v0/mcp/read-resource", json={"uri": "fixture://doc/1", "server": "fy"})
    assert response.status_code == 200 and response.json()["server_name"] == "fy"


@pytest.mark.parametrize("era", ERAS)
def test_list_changed_relists_resources_and_prompts_and_bumps_the_etag(start_agent, era: str) -> None:
    agent = start_agent({"fx": fixture_server("offerings.py", **ERAS[era])})
    agent.wait_state("fx", "ready")
    first = agent.http.get("/api/v0/mcp/resources")
    etag = first.headers["etag"]
    assert etag == f'"{first.json()["version"]}"'
    for path in ("resources", "resource-templates", "prompts", "tools"):
        again = agent.http.get(f"/api/v0/mcp/{path}", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"", path
    assert agent.call("fx__add_offerings").status_code == 200

    def relisted() -> bool:
        uris = [r["uri"] for r in _get(agent, "resources")["resources"]]
        prompts = [p["name"] for p in _get(agent, "prompts")["prompts"]]
        return "fixture://late" in uris and "fx__late" in prompts

    agent.wait_for(relisted, 20, "the new resource and prompt to be listed")
    assert agent.http.get("/api/v0/mcp/resources", headers={"If-None-Match": etag}).status_code == 200
    late = agent.http.post("/api/v0/mcp/read-resource", json={"uri": "fixture://late"}).json()
    assert late["contents"][0]["text"] == "late"


def test_a_server_without_resources_or_prompts_offers_none(start_agent) -> None:
    agent = start_agent({"kinds": fixture_server("content_kinds.py")})
    agent.wait_state("kinds", "ready")
    assert _get(agent, "resources")["resources"] == []
    assert _get(agent, "prompts")["prompts"] == []
    assert _get(agent, "resource-templates")["resource_templates"] == []


def test_server_everything_resources_templates_and_prompts(start_agent) -> None:
    agent = start_agent({"everything": node_server("everything")})
    agent.wait_state("everything", "ready", timeout=60)
    resources = _get(agent, "resources")["resources"]
    assert resources and all(r["server_name"] == "everything" for r in resources)
    templates = _get(agent, "resource-templates")["resource_templates"]
    assert templates and all("{" in t["uri_template"] for t in templates)
    prompts = _get(agent, "prompts")["prompts"]
    assert prompts and all(p["name"].startswith("everything__") for p in prompts)
    text = next(r for r in resources if (r.get("mime_type") or "").startswith("text/"))
    read = agent.http.post("/api/v0/mcp/read-resource", json={"uri": text["uri"]})
    assert read.status_code == 200, read.text
    assert read.json()["contents"][0]["type"] == "resource" and read.json()["contents"][0].get("text")
    simple = next(p for p in prompts if not any(a["required"] for a in p["arguments"]))
    got = agent.http.post("/api/v0/mcp/get-prompt", json={"name": simple["name"]})
    assert got.status_code == 200, got.text
    assert got.json()["messages"]


def test_openapi_documents_the_new_routes(start_agent) -> None:
    agent = start_agent({})
    paths = agent.http.get("/openapi.json").json()["paths"]
    for path in ("resources", "resource-templates", "prompts", "read-resource", "get-prompt"):
        assert f"/api/v0/mcp/{path}" in paths, path
    assert set(paths["/api/v0/mcp/read-resource"]["post"]["responses"]) >= {"200", "400", "404", "502", "504"}
