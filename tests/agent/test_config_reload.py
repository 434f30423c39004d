"""Config files are watched and reloaded differentially; refresh=true does the same (spec/agent.md §1, §4)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.agent.test_cli import workdock
from tests.support.agent import TOKEN, fixture_server, write_config

RELOAD_DEADLINE = 30  # the spec says "about a second"; the deadline only bounds a failing test


def test_an_edit_adds_changes_and_removes_only_what_changed(start_agent, workspace_dir: Path) -> None:
    config = workspace_dir / ".mcp.json"
    agent = start_agent(
        {"keep": fixture_server("list_changed.py"), "gone": fixture_server("crash_during_call.py")}
    )
    agent.wait_state("keep", "ready")
    agent.wait_state("gone", "ready")
    # Mark the kept server's live state: a restart would lose the tool it adds at runtime.
    assert agent.call("keep__add_tool").status_code == 200
    agent.wait_for(lambda: "keep__second" in agent.tool_names(), 5, "keep__second")

    write_config(config, {"keep": fixture_server("list_changed.py"), "new": fixture_server("paginated.py")})
    agent.wait_for(lambda: "new__tool_01" in agent.tool_names(), RELOAD_DEADLINE, "the new server's tools")
    names = agent.tool_names()
    assert not any(n.startswith("gone__") for n in names) and "gone" not in agent.servers()
    assert "keep__second" in names  # untouched: not restarted
    assert agent.server("keep")["restarts"] == 0


def test_an_atomic_rewrite_and_a_file_created_later_are_applied(
    start_agent, workspace_dir: Path, tmp_path: Path
) -> None:
    extra = tmp_path / "extra.json"  # does not exist yet
    agent = start_agent({"a": fixture_server("crash_during_call.py")}, "--config", str(extra))
    agent.wait_state("a", "ready")
    files = agent.http.get("/api/v0/mcp/servers").json()["config_files"]
    assert [(Path(f["path"]).name, f["state"]) for f in files] == [
        ("extra.json", "missing"),
        (".mcp.json", "loaded"),
        ("mcp.json", "missing"),  # .vscode/mcp.json
        ("mcp.json", "missing"),  # .cursor/mcp.json
    ]

    write_config(extra, {"later": fixture_server("crash_during_call.py")})
    agent.wait_state("later", "ready", timeout=RELOAD_DEADLINE + 5)
    assert agent.server("later")["config_file"] == str(extra.resolve())

    temporary = workspace_dir / ".mcp.json.tmp"
    write_config(
        temporary, {"a": fixture_server("crash_during_call.py"), "b": fixture_server("crash_during_call.py")}
    )
    os.replace(temporary, workspace_dir / ".mcp.json")  # write-then-rename, as editors do
    agent.wait_state("b", "ready", timeout=RELOAD_DEADLINE + 5)


def test_an_invalid_file_is_reported_and_the_others_still_load(
    start_agent, workspace_dir: Path, tmp_path: Path
) -> None:
    extra = tmp_path / "extra.json"
    extra.write_text('{"mcpServers": {\n  "x": {"command": "y"}\n  "z": 1\n}}')
    agent = start_agent({"a": fixture_server("crash_during_call.py")}, "--config", str(extra))
    agent.wait_state("a", "ready")
    files = {Path(f["path"]).name: f for f in agent.http.get("/api/v0/mcp/servers").json()["config_files"]}
    assert files["extra.json"]["state"] == "invalid"
    assert "line 3, column 3" in files["extra.json"]["error"]
    assert "extra.json" in agent.log() and "line 3, column 3" in agent.log()
    # Fixing the file is picked up like any edit.
    write_config(extra, {"x": fixture_server("crash_during_call.py")})
    agent.wait_state("x", "ready", timeout=RELOAD_DEADLINE + 5)


def test_earlier_files_win_and_duplicates_are_warned(
    start_agent, workspace_dir: Path, tmp_path: Path
) -> None:
    extra = write_config(tmp_path / "extra.json", {"dup": fixture_server("crash_during_call.py")})
    agent = start_agent({"dup": {"command": "does-not-matter"}}, "--config", str(extra))
    status = agent.wait_state("dup", "ready")
    assert status["config_file"] == str(extra.resolve())
    assert status["warnings"] == [f"also declared in {(workspace_dir / '.mcp.json').resolve()} (ignored)"]


def test_refresh_true_reloads_before_answering(start_agent, workspace_dir: Path) -> None:
    agent = start_agent({"a": fixture_server("crash_during_call.py")}, "--no-watch")
    agent.wait_state("a", "ready")
    write_config(
        workspace_dir / ".mcp.json",
        {"a": fixture_server("crash_during_call.py"), "b": fixture_server("paginated.py")},
    )
    listing = agent.tools(refresh="true")
    names = [t["name"] for t in listing["tools"]]
    assert "b__tool_01" in names and "a__echo" in names
    assert agent.server("a")["restarts"] == 0
    # without changes, refresh re-lists and keeps the version
    assert agent.tools(refresh="true")["version"] == listing["version"]


def test_unset_variable_fails_that_server_only(start_agent) -> None:
    agent = start_agent(
        {
            "needs": {"type": "http", "url": "${WORKDOCK_TEST_UNSET_URL}/mcp"},
            "ok": fixture_server("crash_during_call.py"),
        }
    )
    agent.wait_state("ok", "ready")
    needs = agent.server("needs")
    assert needs["state"] == "failed" and "WORKDOCK_TEST_UNSET_URL" in needs["error"]
    assert json.dumps(agent.tools()).count("ok__echo") == 1


def test_a_typo_keeps_the_last_good_servers_of_that_file_running(start_agent, workspace_dir: Path) -> None:
    config = workspace_dir / ".mcp.json"
    agent = start_agent({"keep": fixture_server("list_changed.py"), "other": fixture_server("paginated.py")})
    agent.wait_state("keep", "ready")
    agent.wait_state("other", "ready")
    # Live state a restart would lose: a tool the server adds at runtime.
    assert agent.call("keep__add_tool").status_code == 200
    agent.wait_for(lambda: "keep__second" in agent.tool_names(), 5, "keep__second")

    good = config.read_text()
    config.write_text(good.replace('"keep": {', '"keep": {,', 1))  # a stray comma
    invalid = agent.wait_for(
        lambda: (
            (f := agent.http.get("/api/v0/mcp/servers").json()["config_files"][0])["state"] == "invalid" and f
        ),
        RELOAD_DEADLINE,
        "the typo to be reported",
    )
    assert "line 3, column 14" in invalid["error"] and invalid["kept_servers"] == ["keep", "other"]
    assert agent.server("keep")["state"] == "ready" and agent.server("keep")["restarts"] == 0
    assert "keep__second" in agent.tool_names()  # not restarted: its state lives on
    assert agent.call("other__tool_01").status_code == 200
    agent.wait_for(lambda: "its last good servers keep running (keep, other)" in agent.log(), 5, "the log")

    status = workdock("status", env={"WORKDOCK_AGENT_TOKEN": TOKEN, "WORKDOCK_AGENT_URL": agent.url})
    assert (
        "config invalid" in status.stdout and "last good servers keep running (keep, other)" in status.stdout
    )

    # Fixed, the file applies as any edit does: only what changed is touched.
    write_config(config, {"keep": fixture_server("list_changed.py")})
    agent.wait_for(lambda: "other" not in agent.servers(), RELOAD_DEADLINE, "other to be removed")
    files = agent.http.get("/api/v0/mcp/servers").json()["config_files"]
    assert files[0]["state"] == "loaded" and files[0]["kept_servers"] == []
    assert "keep__second" in agent.tool_names()
