"""`headersHelper` (Claude Code's): a command prints an HTTP server's headers as JSON; it runs
before connecting and again on a 401, and its output is never logged or shown."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import httpx2

from tests.support.helpers import FIXTURES, free_port, wait_until_sync

HELPER = (
    "import json, pathlib, sys; "
    "pathlib.Path(sys.argv[2]).open('a').write('ran\\n'); "
    "print(json.dumps({'Authorization': 'Bearer ' + pathlib.Path(sys.argv[1]).read_text().strip()}))"
)


def start_checked_server(spawn: Callable[..., object], token_file: Path) -> str:
    port = free_port()
    spawn([sys.executable, str(FIXTURES / "header_checked_http.py"), str(port), str(token_file)])

    def up() -> bool:
        try:
            return httpx2.get(f"http://127.0.0.1:{port}/mcp", timeout=1).status_code == 401
        except httpx2.TransportError:
            return False

    wait_until_sync(up, timeout=20, message="the header-checked server to listen")
    return f"http://127.0.0.1:{port}/mcp"


def test_headers_come_from_the_helper_and_it_reruns_on_401(
    start_agent, spawn, tmp_path: Path, workspace_dir: Path
) -> None:
    server_token, helper_source, runs = (
        tmp_path / "server.token",
        tmp_path / "helper.token",
        tmp_path / "runs",
    )
    server_token.write_text("first-secret-token-aaaa")
    helper_source.write_text("first-secret-token-aaaa")
    url = start_checked_server(spawn, server_token)
    helper = shlex.join([sys.executable, "-c", HELPER, str(helper_source), str(runs)])
    agent = start_agent({"checked": {"type": "http", "url": url, "headersHelper": helper}})
    agent.wait_state("checked", "ready")
    answer = agent.call("checked__echo", {"text": "hello"})
    assert answer.status_code == 200 and "hello" in answer.text
    ran_before = runs.read_text().count("ran")

    # The credential rotates: the next request gets a 401, the helper runs again, the call succeeds.
    server_token.write_text("second-secret-token-bbbb")
    helper_source.write_text("second-secret-token-bbbb")
    again = agent.call("checked__echo", {"text": "after rotation"})
    assert again.status_code == 200, again.text
    assert "after rotation" in again.text
    assert runs.read_text().count("ran") > ran_before

    shown = agent.http.get("/api/v0/mcp/servers").text
    for secret in ("first-secret-token-aaaa", "second-secret-token-bbbb"):
        assert secret not in shown and secret not in agent.log()


def test_a_failing_helper_is_reported_without_its_output(start_agent, spawn, tmp_path: Path) -> None:
    token = tmp_path / "server.token"
    token.write_text("whatever")
    url = start_checked_server(spawn, token)
    helper = "echo leaked-helper-output; exit 3"
    agent = start_agent(
        {"checked": {"type": "http", "url": url, "headersHelper": helper}}, "--connect-timeout", "5"
    )
    failed = agent.wait_state("checked", "failed")
    assert "headersHelper exited with status 3" in failed["error"]
    assert "leaked-helper-output" not in agent.log()
