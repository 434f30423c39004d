"""`workdock tools | call | status` against a running agent, and the agent's token handling.

spec/agent.md section 5.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.agent import TOKEN, RunningAgent, fixture_server, free_port


def workdock(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workdock.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


@pytest.fixture
def agent(start_agent) -> RunningAgent:
    agent = start_agent(
        {
            "kinds": fixture_server("content_kinds.py"),
            "crashy": fixture_server("crash_during_call.py"),
            "hung": fixture_server("hang_initialize.py"),
        },
        "--connect-timeout",
        "10",  # long enough for a Python server to start on a loaded machine; "hung" still fails
    )
    agent.wait_state("kinds", "ready", timeout=60)
    agent.wait_state("hung", "failed", timeout=60)
    return agent


def client_env(agent: RunningAgent) -> dict[str, str]:
    return {"WORKDOCK_AGENT_TOKEN": TOKEN, "WORKDOCK_AGENT_URL": agent.url}


def test_tools_prints_a_table_and_json(agent: RunningAgent) -> None:
    table = workdock("tools", env=client_env(agent))
    assert table.returncode == 0, table.stderr
    assert "kinds__structured" in table.stdout and "crashy__echo" in table.stdout
    raw = workdock("tools", "--json", env=client_env(agent))
    assert {t["name"] for t in json.loads(raw.stdout)["tools"]} >= {"kinds__text", "crashy__crash"}


def test_tools_fit_the_terminal_one_line_each_with_argument_names(agent: RunningAgent) -> None:
    listed = json.loads(workdock("tools", "--json", env=client_env(agent)).stdout)["tools"]
    narrow = workdock("tools", env={**client_env(agent), "COLUMNS": "80"})
    assert narrow.returncode == 0, narrow.stderr
    lines = narrow.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = [line for line in lines if line.strip().split(" ")[0] in {t["name"] for t in listed}]
    assert len(rows) == len(listed)  # one line per tool, the name never cut
    assert len(lines) <= len(listed) + 8
    [echo] = [row for row in rows if row.split()[0] == "crashy__echo"]
    assert echo.split()[1] == "crashy" and echo.rstrip().endswith("text*")  # required, marked
    assert "* required" in narrow.stdout
    # The servers that are not ready are listed under the table, with why.
    assert re.search(r"^hung is (failed|connecting).*connect budget", narrow.stdout, re.MULTILINE)
    mismatch = "Structured content that does NOT match its own output schema."
    assert mismatch not in narrow.stdout  # cut to fit...
    long = workdock("tools", "--long", env={**client_env(agent), "COLUMNS": "80"})
    assert mismatch in " ".join(" ".join(long.stdout.split()).split(" │ "))  # ...and whole with --long


def test_call_with_key_value_and_json_arguments(agent: RunningAgent) -> None:
    result = workdock("call", "crashy__echo", "-a", "text=hello there", env=client_env(agent))
    assert result.returncode == 0 and result.stdout.strip() == "hello there"
    result = workdock(
        "call", "crashy__echo", "--args", '{"text": "from json"}', "--json", env=client_env(agent)
    )
    assert json.loads(result.stdout)["content"] == [{"type": "text", "text": "from json"}]
    image = workdock("call", "kinds__image", env=client_env(agent))
    assert image.returncode == 0 and "image image/png" in image.stdout


def test_call_exits_non_zero_on_tool_error_and_on_api_errors(agent: RunningAgent) -> None:
    failed = workdock("call", "kinds__fail", env=client_env(agent))
    assert failed.returncode == 1 and "this tool failed on purpose" in failed.stdout
    missing = workdock("call", "nope__nothing", env=client_env(agent))
    assert missing.returncode == 1 and "no tool named 'nope__nothing'" in missing.stderr
    bad_args = workdock("call", "crashy__echo", "--args", "[1]", env=client_env(agent))
    assert bad_args.returncode != 0 and "JSON object" in bad_args.stderr
    wrong_token = workdock("tools", env={**client_env(agent), "WORKDOCK_AGENT_TOKEN": "wrong"})
    assert wrong_token.returncode == 1 and "unauthorized" in wrong_token.stderr


def test_status_shows_states_errors_and_stderr_tail(agent: RunningAgent) -> None:
    result = workdock("status", env=client_env(agent))
    assert result.returncode == 0, result.stderr
    # the hung server is failed, or connecting again for its next try: its last error shows either way
    assert "ready" in result.stdout and ("failed" in result.stdout or "connecting" in result.stdout)
    assert "connect budget" in result.stdout and "hang_initialize: received" in result.stdout
    raw = json.loads(workdock("status", "--json", env=client_env(agent)).stdout)
    hung = {s["name"]: s for s in raw["servers"]}["hung"]
    assert hung["state"] in ("failed", "connecting") and "connect budget" in hung["error"]


def test_unreachable_agent_is_a_clear_error() -> None:
    result = workdock("tools", "--agent", "http://127.0.0.1:9", env={"WORKDOCK_AGENT_TOKEN": "x"})
    assert result.returncode == 1 and "agent unreachable" in result.stderr


def test_agent_makes_a_private_token_file_when_none_is_given(tmp_path: Path, workspace_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WORKDOCK_AGENT_TOKEN"}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    token_file = tmp_path / "state" / "workdock" / "agent.token"
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workdock.cli",
            "agent",
            "--dir",
            str(workspace_dir),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        RunningAgent.wait_for(
            lambda: token_file.exists() and token_file.read_text().strip(), 20, "the token file"
        )
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        listed = RunningAgent.wait_for(
            lambda: (
                (r := workdock("tools", "--agent", f"http://127.0.0.1:{port}", "--json", env=env)).returncode
                == 0
                and r
            ),
            20,
            "the agent to answer with the file's token",
        )
        assert json.loads(listed.stdout)["tools"] == []
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
    assert str(token_file) in output
