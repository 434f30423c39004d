"""Configured headers stay with their server: a redirect to another origin is not followed, so
they never reach it (spec/agent.md; the MCP SDK follows redirects within the origin only)."""

from __future__ import annotations

import pytest

from tests.support.http_stub import Answer

SECRETS = {"Authorization": "Bearer hdr-s3cret", "X-Api-Key": "key-s3cret"}


@pytest.mark.parametrize(("transport", "path"), [("http", "/mcp"), ("sse", "/sse")])
def test_a_redirect_to_another_origin_is_refused_and_the_headers_stay_home(
    start_agent, http_stub, transport: str, path: str
) -> None:
    elsewhere = http_stub(lambda _: Answer(200, {"content-type": "application/json"}, b"{}"))
    redirecting = http_stub(lambda _: Answer(307, {"location": f"{elsewhere.url}{path}"}))
    agent = start_agent({"moved": {"type": transport, "url": f"{redirecting.url}{path}", "headers": SECRETS}})
    error = agent.wait_state("moved", "failed")["error"]
    assert f"{elsewhere.url}{path}" in error and "not followed" in error
    # The server's own origin got the headers; the other one got nothing at all.
    assert redirecting.requests, "the agent never tried the configured server"
    assert all(r.headers.get("authorization") == SECRETS["Authorization"] for r in redirecting.requests)
    assert all(r.headers.get("x-api-key") == SECRETS["X-Api-Key"] for r in redirecting.requests)
    assert elsewhere.requests == []
    assert "s3cret" not in agent.log() and "s3cret" not in error
