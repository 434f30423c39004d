"""Errors that say what to fix: a server that cannot start, an HTTP server that refuses us, a
config file whose servers sit under a key the agent does not read. All through the real agent,
which runs its event loop on uvloop as `workdock agent` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.agent import TOKEN, RunningAgent, write_config
from tests.support.http_stub import Answer


def test_a_server_that_cannot_start_names_its_command_or_its_directory(
    start_agent, workspace_dir: Path
) -> None:
    (workspace_dir / "bin").mkdir()
    agent = start_agent(
        {
            "bare": {"command": "no-such-command-4a1f"},
            "relative": {"command": "./bin/no-such-server"},
            "absolute": {"command": "/nonexistent/bin/server"},
            "nocwd": {"command": sys.executable, "args": ["-c", "pass"], "cwd": "no/such/dir"},
            "filecwd": {"command": sys.executable, "cwd": ".mcp.json"},
        }
    )
    errors = {name: agent.wait_state(name, "failed")["error"] for name in agent.servers()}
    assert errors["bare"].startswith("command not found: no-such-command-4a1f (looked up on PATH: ")
    assert errors["relative"].startswith("command not found: ./bin/no-such-server (no such file")
    assert errors["absolute"].startswith("command not found: /nonexistent/bin/server (no such file")
    assert errors["nocwd"] == (
        f"the working directory {workspace_dir / 'no/such/dir'} does not exist (the server's cwd)"
    )
    assert errors["filecwd"] == (
        f"the working directory {workspace_dir / '.mcp.json'} is not a directory (the server's cwd)"
    )
    assert "None" not in " ".join(errors.values())


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (
            401,
            b"",
            "answered 401 Unauthorized: the server wants credentials. Set them in the server's headers",
        ),
        (403, b"", "answered 403 Forbidden: the server wants credentials."),
        (500, b"database is down", "answered 500 Internal Server Error: the server failed; see its own log"),
        (404, b"<html>nope</html>", "answered 404 Not Found: is the URL right?"),
    ],
)
def test_an_http_server_answering_an_error_is_reported_with_its_status_and_url(
    start_agent, http_stub, status: int, body: bytes, says: str
) -> None:
    stub = http_stub(lambda _: Answer(status, {"content-type": "text/plain"}, body))
    # The query may hold a key: it is never shown.
    agent = start_agent({"remote": {"type": "http", "url": f"{stub.url}/mcp?api_key=s3cr3t"}})
    error = agent.wait_state("remote", "failed")["error"]
    assert f"POST {stub.url}/mcp {says}" in error
    if status == 500:
        assert error.endswith("(database is down)")
    assert "s3cr3t" not in error and "s3cr3t" not in agent.log()
    assert "Server returned an error response" not in error


def test_a_legacy_sse_server_answering_401_is_reported_with_its_status_and_url(
    start_agent, http_stub
) -> None:
    stub = http_stub(lambda _: Answer(401))
    agent = start_agent({"remote": {"type": "sse", "url": f"{stub.url}/sse"}})
    error = agent.wait_state("remote", "failed")["error"]
    assert error.startswith(f"GET {stub.url}/sse answered 401 Unauthorized: the server wants credentials.")


def test_servers_under_another_key_are_warned_about_in_status_and_log(
    start_agent, workspace_dir: Path
) -> None:
    # VS Code's own .vscode/mcp.json is read (tests/agent/test_config_formats.py); its settings'
    # "mcp.servers" are not.
    vscode = workspace_dir / "settings.json"
    vscode.write_text(
        json.dumps({"mcp": {"servers": {"github": {"type": "http", "url": "https://x.test/mcp"}}}})
    )
    write_config(workspace_dir / ".mcp.json", {})
    agent = start_agent(None, "--config", str(vscode))
    files = {f["path"]: f for f in agent.http.get("/api/v0/mcp/servers").json()["config_files"]}
    warning = "'mcp.servers' holds 1 server, which is not read: only 'mcpServers' is"
    assert files[str(vscode)]["state"] == "loaded" and files[str(vscode)]["warnings"] == [warning]
    assert files[str(workspace_dir / ".mcp.json")]["warnings"] == []
    RunningAgent.wait_for(lambda: warning in agent.log(), 10, "the warning in the agent's log")
    status = subprocess.run(
        [sys.executable, "-m", "workdock.cli", "status", "--agent", agent.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "WORKDOCK_AGENT_TOKEN": TOKEN, "COLUMNS": "200"},
    )
    assert status.returncode == 0 and warning in status.stdout


def test_a_proxy_from_the_environment_is_used_and_its_answers_explained_too(start_agent, http_stub) -> None:
    proxy = http_stub(lambda _: Answer(401))
    server = "http://127.0.0.1:9/mcp"  # never reached directly: every request goes through the proxy
    env = {"HTTP_PROXY": proxy.url, "http_proxy": proxy.url, "NO_PROXY": "", "no_proxy": ""}
    agent = start_agent({"remote": {"type": "http", "url": server}}, env=env)
    error = agent.wait_state("remote", "failed")["error"]
    assert error.startswith(f"POST {server} answered 401 Unauthorized: the server wants credentials.")
    # Absolute-form, each one: the OAuth discovery a 401 sets off goes through the proxy as well.
    assert proxy.requests and all(r.path.startswith("http://127.0.0.1:9/") for r in proxy.requests)
    assert proxy.requests[0].path == server
