"""What `agent`, `server` and `up` print: a taken address is one line and exit status 1; the banner
comes first; each server's state change is logged once, a failure not again at every retry."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.agent import RunningAgent, fixture_server, write_config
from support.helpers import free_port, wait_until_sync
from support.processes import stop_group


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port this test process listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "COLUMNS": "300",
    }
    return subprocess.run(
        [sys.executable, "-m", "workdock.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "command",
    [
        ["agent", "--dir", "{dir}"],
        ["server", "--data-dir", "{data}"],
        ["up", "--dir", "{dir}", "--data-dir", "{data}"],
    ],
    ids=["agent", "server", "up"],
)
def test_a_taken_address_is_one_line_naming_it_and_its_holder(
    command: list[str], taken_port: int, tmp_path: Path, workspace_dir: Path
) -> None:
    args = [a.format(dir=workspace_dir, data=tmp_path / "data") for a in command]
    result = run(*args, "--listen", f"127.0.0.1:{taken_port}", tmp_path=tmp_path)
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    [line] = lines
    assert f"127.0.0.1:{taken_port} is already in use" in line
    assert f"(pid {os.getpid()})" in line  # this test holds it
    assert "--listen" in line


def test_the_agent_logs_each_failure_once_after_its_banner(workspace_dir: Path, tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    write_config(
        workspace_dir / ".mcp.json",
        {
            "ok": fixture_server("crash_during_call.py"),
            "needs": {"command": "${WORKDOCK_TEST_UNSET_COMMAND}"},
            # Dies at once, every time; each try leaves a line in `attempts`.
            "broken": {"command": "sh", "args": ["-c", f"echo try >> {attempts}; echo broken >&2; exit 3"]},
        },
    )
    agent = RunningAgent(workspace_dir, tmp_path / "agent.log")
    try:
        agent.wait_state("ok", "ready")
        # Tries at 0, 1, 3 and 7 s (backoff 1, 2, 4 s): wait for the fourth.
        agent.wait_for(
            lambda: attempts.exists() and len(attempts.read_text().splitlines()) >= 4, 30, "four tries"
        )
        log = agent.log()
    finally:
        agent.stop()
    lines = log.splitlines()
    assert lines[0].startswith(f"workdock agent for {workspace_dir} on http://127.0.0.1:{agent.port}")
    assert log.count("server broken: failed") == 1, log
    assert "still failing" not in log  # repeats come at most once a minute
    # An unset variable fails its server: said once, naming the variable.
    [needs] = [line for line in lines if "server needs" in line]
    assert "WORKDOCK_TEST_UNSET_COMMAND" in needs and "failed" in needs
    assert log.count("server ok: ready") == 1
    assert "server broken stderr" not in log  # a server's stderr is logged with -v only


def test_the_server_prints_its_banner_first(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "workdock.cli", "server"),
                *("--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_until_sync(lambda: "Log in once at" in log_path.read_text(), 60, message="the login URL")
        text = log_path.read_text()
        assert text.startswith(f"workdock server on http://127.0.0.1:{port} (SQLite in {tmp_path / 'data'})")
    finally:
        stop_group(process.pid)
