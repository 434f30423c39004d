"""The trust gate: a workspace's own servers start only once approved (`workdock trust`, the agent
API, `workdock up` asking in a terminal); `--config` files and `--trust` are not gated; an approval
is kept until the entry changes."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pexpect

from tests.agent.test_cli import workdock
from tests.support.agent import TOKEN, RunningAgent, fixture_server, write_config
from tests.support.helpers import free_port, wait_until_sync
from tests.support.processes import stop_group

SECRET = "s3cret-value-0123456789"


def gated(state: Path, **extra: str) -> dict[str, str]:
    """An agent's environment with the gate on, approvals kept in ``state``."""
    return {"WORKDOCK_TRUST": "0", "XDG_STATE_HOME": str(state), **extra}


def client(agent: RunningAgent, state: Path) -> dict[str, str]:
    return {"WORKDOCK_AGENT_TOKEN": TOKEN, "WORKDOCK_AGENT_URL": agent.url, "XDG_STATE_HOME": str(state)}


def server_with_secret(*args: str, token: str = SECRET) -> dict[str, Any]:
    entry = fixture_server("print_env.py", API_TOKEN=token, LOG_LEVEL="info")
    entry["args"].extend(args)
    return entry


def started_scripts(agent: RunningAgent) -> list[str]:
    return [" ".join(p.cmdline()) for p in agent.descendants() if "print_env.py" in " ".join(p.cmdline())]


def test_a_project_server_waits_for_approval_and_trust_starts_it(
    start_agent, workspace_dir: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    extra = write_config(tmp_path / "mine.json", {"mine": fixture_server("print_env.py")})
    agent = start_agent(
        {"proj": server_with_secret("--flag"), "other": fixture_server("crash_during_call.py")},
        "--config",
        str(extra),
        env=gated(state),
    )
    # The user's own --config file is not gated.
    agent.wait_state("mine", "ready")
    waiting = agent.wait_state("proj", "pending_approval")
    assert waiting["config_file"] == str((workspace_dir / ".mcp.json").resolve())
    assert "print_env.py --flag" in waiting["launch"] and "API_TOKEN" in waiting["launch"]
    assert "workdock trust proj" in waiting["error"]
    listing = agent.http.get("/api/v0/mcp/servers").text
    assert SECRET not in listing and SECRET not in agent.log()
    assert not any("--flag" in line for line in started_scripts(agent)), "a pending server was started"
    assert not any(n.startswith("proj__") for n in agent.tool_names())

    listed = workdock("trust", "--list", env=client(agent, state))
    assert listed.returncode == 0, listed.stderr
    assert "proj" in listed.stdout and "other" in listed.stdout and SECRET not in listed.stdout

    status = workdock("status", env=client(agent, state))
    assert status.returncode == 0, status.stderr
    assert (
        "pending_approval" in status.stdout and "waits for approval (`workdock trust proj`)" in status.stdout
    )
    assert SECRET not in status.stdout

    approved = workdock("trust", "proj", env=client(agent, state))
    assert approved.returncode == 0, approved.stderr
    assert "proj" in approved.stdout
    agent.wait_state("proj", "ready")
    assert agent.server("other")["state"] == "pending_approval"  # approved one by one

    store = state / "workdock" / "trust.json"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert SECRET not in store.read_text()

    unknown = agent.http.post("/api/v0/mcp/trust", json={"servers": ["nope"]})
    assert unknown.status_code == 404 and "nope" in unknown.json()["message"]
    both = agent.http.post("/api/v0/mcp/trust", json={"servers": ["other"], "all": True})
    assert both.status_code == 400 and set(both.json()) == {"message", "detail"}
    by_file = agent.http.post("/api/v0/mcp/trust", json={"file": ".mcp.json"})
    assert by_file.status_code == 200 and by_file.json() == {"approved": ["other"]}
    agent.wait_state("other", "ready")


def test_an_approval_is_kept_until_the_entry_changes(
    start_agent, workspace_dir: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = start_agent({"proj": server_with_secret()}, env=gated(state))
    first.wait_state("proj", "pending_approval")
    assert first.http.post("/api/v0/mcp/trust", json={"all": True}).json() == {"approved": ["proj"]}
    first.wait_state("proj", "ready")
    first.stop()

    # A later run: approved already, even with its secret rotated.
    config = workspace_dir / ".mcp.json"
    write_config(config, {"proj": server_with_secret(token="rotated-secret-value")})
    again = start_agent(None, env=gated(state))
    again.wait_state("proj", "ready")
    # A changed command line asks again (the file is watched: at once, without a restart).
    write_config(config, {"proj": server_with_secret("--now-also-this")})
    again.wait_state("proj", "pending_approval", timeout=20)
    assert "--now-also-this" in again.server("proj")["launch"]


def test_trust_flag_starts_everything(start_agent, tmp_path: Path) -> None:
    agent = start_agent({"proj": server_with_secret()}, "--trust", env=gated(tmp_path / "state"))
    agent.wait_state("proj", "ready")
    assert not (tmp_path / "state" / "workdock" / "trust.json").exists()  # nothing recorded


def test_up_asks_in_a_terminal_and_starts_only_what_was_approved(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    write_config(
        project / ".mcp.json",
        {"yes-one": fixture_server("print_env.py"), "no-one": fixture_server("crash_during_call.py")},
    )
    state, port = tmp_path / "state", free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("WORKDOCK_AGENT_TOKEN", "WORKDOCK_AGENT_URL")}
    env.update(WORKDOCK_TRUST="0", XDG_STATE_HOME=str(state), TERM="dumb", COLUMNS="200", NO_COLOR="1")
    child = pexpect.spawn(
        sys.executable,
        [
            *("-m", "workdock.cli", "up", "--dir", str(project)),
            *("--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")),
        ],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 200),
    )
    child.logfile_read = io.StringIO()
    try:
        child.expect("yes-one")
        child.expect(r"start it\?")
        child.sendline("y")
        child.expect("no-one")
        child.expect(r"start it\?")
        child.sendline("n")
        child.expect("workdock is up")

        def statuses() -> dict[str, str] | None:
            shown = workdock("status", "--json", env={"XDG_STATE_HOME": str(state), "WORKDOCK_TRUST": "0"})
            if shown.returncode != 0:
                return None
            servers = {s["name"]: s["state"] for s in json.loads(shown.stdout)["servers"]}
            return servers if servers.get("yes-one") == "ready" else None

        servers = wait_until_sync(statuses, timeout=60, message="up's agent to start the approved server")
        assert servers == {"yes-one": "ready", "no-one": "pending_approval"}
    finally:
        if child.isalive():
            stop_group(child.pid)
        child.close()
