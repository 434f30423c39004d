"""Real MCP servers over every transport, and every kind of result content, through the agent."""

from __future__ import annotations

import base64
import json
import sys

import pytest

from tests.support.agent import fixture_server


def test_time_and_everything_over_stdio_http_and_sse_together(
    start_agent, everything_bin, everything_http_url, everything_sse_url
) -> None:
    secret_header, secret_env = "Bearer s3cr3t-header-value", "s3cr3t-env-value"
    agent = start_agent(
        {
            "time": {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]},
            "ev-stdio": {"command": str(everything_bin), "env": {"SOME_TOKEN": secret_env}},
            "ev-http": {
                "type": "http",
                "url": everything_http_url,
                "headers": {"Authorization": secret_header},
            },
            "ev-sse": {"type": "sse", "url": everything_sse_url, "headers": {"X-Api-Key": secret_header}},
        }
    )
    for name in ("time", "ev-stdio", "ev-http", "ev-sse"):
        status = agent.wait_state(name, "ready", timeout=30)
        assert status["tool_count"] > 0 and status["error"] is None
    servers = agent.servers()
    assert {n: s["transport"] for n, s in servers.items()} == {
        "time": "stdio",
        "ev-stdio": "stdio",
        "ev-http": "http",
        "ev-sse": "sse",
    }
    assert servers["time"]["protocol_version"] and servers["ev-stdio"]["protocol_version"]

    names = agent.tool_names()
    for server in ("ev-stdio", "ev-http", "ev-sse"):
        assert f"{server}__echo" in names
        response = agent.call(f"{server}__echo", {"message": f"via {server}"})
        assert response.status_code == 200
        assert response.json()["content"] == [{"type": "text", "text": f"Echo: via {server}"}]
    now = agent.call("time__get_current_time", {"timezone": "UTC"}).json()
    assert now["is_error"] is False and now["structured_content"]["timezone"] == "UTC"

    # server-everything's own structured content and image tools, over HTTP
    summed = agent.call("ev-http__get-sum", {"a": 2, "b": 3}).json()
    assert "5" in summed["content"][0]["text"]
    image = agent.call("ev-http__get-tiny-image").json()
    png = next(b for b in image["content"] if b["type"] == "image")
    assert png["media_type"] == "image/png" and base64.b64decode(png["data"]).startswith(b"\x89PNG")
    structured = agent.call("ev-sse__get-structured-content", {"location": "New York"}).json()
    assert isinstance(structured["structured_content"], dict) and structured["structured_content"]

    # Secrets from headers and env never show in any response or log line.
    everything = (
        json.dumps([agent.tools(), agent.servers()]) + agent.http.get("/openapi.json").text + agent.log()
    )
    assert secret_header.split()[1] not in everything and secret_env not in everything


@pytest.fixture
def kinds_agent(start_agent):
    agent = start_agent({"kinds": fixture_server("content_kinds.py")})
    agent.wait_state("kinds", "ready")
    return agent


def blocks(agent, tool: str) -> dict:
    response = agent.call(f"kinds__{tool}")
    assert response.status_code == 200, response.text
    return response.json()


def test_every_content_kind_reaches_the_wire(kinds_agent) -> None:
    assert blocks(kinds_agent, "text")["content"] == [{"type": "text", "text": "plain text result"}]
    image = blocks(kinds_agent, "image")["content"][0]
    assert image["type"] == "image" and image["media_type"] == "image/png"
    assert base64.b64decode(image["data"]).startswith(b"\x89PNG")
    audio = blocks(kinds_agent, "audio")["content"][0]
    assert audio["type"] == "audio" and audio["media_type"] == "audio/wav"
    assert base64.b64decode(audio["data"]).startswith(b"RIFF")
    text_resource = blocks(kinds_agent, "resource_text")["content"][0]
    assert text_resource["type"] == "resource" and text_resource["uri"] == "file:///fixture/notes.txt"
    assert (
        text_resource["media_type"] == "text/plain" and text_resource["text"] and "data" not in text_resource
    )
    blob = blocks(kinds_agent, "resource_blob")["content"][0]
    assert blob["type"] == "resource" and blob["media_type"] == "application/octet-stream"
    assert base64.b64decode(blob["data"]) and "text" not in blob
    link = blocks(kinds_agent, "resource_link")["content"][0]
    assert link == {
        "type": "resource_link",
        "uri": "file:///fixture/report.pdf",
        "name": "report.pdf",
        "description": link["description"],
        "media_type": "application/pdf",
    }
    assert [b["type"] for b in blocks(kinds_agent, "all_kinds")["content"]] == [
        "text",
        "image",
        "audio",
        "resource",
        "resource",
        "resource_link",
    ]


def test_structured_content_and_errors_pass_through(kinds_agent) -> None:
    structured = blocks(kinds_agent, "structured")
    assert structured["structured_content"] and structured["is_error"] is False
    # a result that breaks its own outputSchema is passed on as it is, not refused
    mismatch = blocks(kinds_agent, "structured_mismatch")
    assert isinstance(mismatch["structured_content"]["temperature"], str)
    failed = blocks(kinds_agent, "fail")
    assert failed["is_error"] is True
    assert failed["content"] == [{"type": "text", "text": "this tool failed on purpose"}]
