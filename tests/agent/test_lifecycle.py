"""Server lifecycle through the real agent: faults, eras, restarts, shutdown (spec/agent.md §3)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.support.agent import fixture_server


def text_of(response) -> str:
    assert response.status_code == 200, response.text
    return "".join(block.get("text", "") for block in response.json()["content"])


def test_a_hung_server_delays_nobody_and_fails_after_its_budget(start_agent) -> None:
    agent = start_agent(
        {"hung": fixture_server("hang_initialize.py"), "ok": fixture_server("crash_during_call.py")},
        "--connect-timeout",
        "8",  # far longer than the other server takes to start, even on a loaded machine
    )
    agent.wait_state("ok", "ready")
    # the hung server is still inside its 8 s budget, so nothing waited for it
    assert agent.server("hung")["state"] == "connecting"  # the API is up and lists what is ready
    assert "ok__echo" in agent.tool_names()
    failed = agent.wait_state("hung", "failed", timeout=30)
    assert "connect budget of 8 s" in failed["error"]
    assert any("received" in line for line in failed["stderr_tail"])
    # retried in the background with backoff: it goes back to connecting for its next attempt
    agent.wait_state("hung", "connecting", timeout=10)


def test_a_server_that_dies_mid_call_gives_502_and_comes_back(start_agent) -> None:
    agent = start_agent({"crashy": fixture_server("crash_during_call.py")})
    agent.wait_state("crashy", "ready")
    response = agent.call("crashy__crash")
    assert response.status_code == 502
    assert "crashy" in response.json()["message"]
    status = agent.wait_for(
        lambda: (s := agent.server("crashy"))["state"] == "restarting" and s, 5, "the restarting state"
    )
    assert any("exiting with code 3" in line for line in status["stderr_tail"])
    # while it is down its tools are unlisted, but a call still finds the route and gets 502
    assert "crashy__echo" not in agent.tool_names()
    assert agent.call("crashy__echo", {"text": "x"}).status_code == 502
    back = agent.wait_state("crashy", "ready", timeout=10)
    assert back["restarts"] == 1
    assert text_of(agent.call("crashy__echo", {"text": "again"})) == "again"


def test_garbage_on_stdout_is_skipped(start_agent) -> None:
    agent = start_agent({"chatty": fixture_server("garbage_stdout.py")})
    agent.wait_state("chatty", "ready")
    for i in range(3):
        assert text_of(agent.call("chatty__echo", {"text": f"hi {i}"})) == f"hi {i}"
    assert "not JSON-RPC" in agent.log()
    # An answer with a byte that is not UTF-8 is read with it replaced, as the SDK's session does.
    assert text_of(agent.call("chatty__echo", {"text": "a NOT-UTF8 byte"})) == "a \ufffd byte"


def test_a_stderr_flood_never_blocks_and_the_last_50_lines_are_kept(start_agent) -> None:
    agent = start_agent(
        {
            "loud": fixture_server(
                "stderr_flood.py", STDERR_FLOOD_STARTUP="20000", STDERR_FLOOD_PER_CALL="5000"
            )
        }
    )
    agent.wait_state("loud", "ready", timeout=30)
    for i in range(3):
        assert text_of(agent.call("loud__echo", {"text": str(i)})) == str(i)
    tail = agent.wait_for(
        lambda: (t := agent.server("loud")["stderr_tail"]) and t[-1].endswith("call 3 done") and t,
        10,
        "the stderr tail to reach the last call",
    )
    assert len(tail) == 50


def test_tools_list_is_paginated_to_the_end_and_names_are_made_safe(start_agent) -> None:
    agent = start_agent({"pages": fixture_server("paginated.py", PAGE_SIZE="4")})
    agent.wait_state("pages", "ready")
    tools = {t["original_name"]: t["name"] for t in agent.tools()["tools"]}
    assert len(tools) == 29
    assert all(f"tool_{i:02d}" in tools for i in range(1, 26))
    assert tools["a_b"] == "pages__a_b"  # the clean name keeps its name ...
    assert tools["a.b"] != "pages__a_b" and tools["a.b"].startswith(
        "pages__a_b_"
    )  # ... the renamed one yields
    assert tools["x:y"] == "pages__x_y"
    long_original = next(n for n in tools if len(n) > 64)
    assert len(tools[long_original]) == 64
    warnings = agent.server("pages")["warnings"]
    assert f"tool 'a.b' offered as '{tools['a.b']}'" in warnings
    # every tool is reachable by its offered name, and reaches the right original tool
    for original in ("a.b", "a_b", "x:y", long_original, "tool_25"):
        assert text_of(agent.call(tools[original], {"k": 1})).startswith(f"{original} called with")


def test_list_changed_refreshes_the_catalog_on_both_protocol_eras(start_agent) -> None:
    agent = start_agent(
        {
            "modern": fixture_server("list_changed.py"),
            "legacy": fixture_server("list_changed.py", FIXTURE_ERA="legacy"),
        }
    )
    assert agent.wait_state("modern", "ready")["protocol_version"] == "2026-07-28"
    assert agent.wait_state("legacy", "ready")["protocol_version"] == "2025-11-25"
    before = agent.tools()["version"]
    for server in ("modern", "legacy"):
        assert text_of(agent.call(f"{server}__add_tool")) == "added second"
    agent.wait_for(
        lambda: {"modern__second", "legacy__second"} <= set(agent.tool_names()),
        5,
        "both servers' new tool to be listed",
    )
    assert int(agent.tools()["version"]) > int(before)
    assert text_of(agent.call("legacy__second")) == "second"


def test_a_slow_call_times_out_with_504_and_the_server_is_told(start_agent, tmp_path: Path) -> None:
    cancel_log = tmp_path / "cancelled.jsonl"
    agent = start_agent(
        {"slow": {**fixture_server("slow_tool.py", CANCEL_LOG=str(cancel_log)), "timeout": 700}}
    )
    agent.wait_state("slow", "ready")
    began = time.monotonic()
    response = agent.call("slow__sleep", {"seconds": 30})  # the server's own `timeout` (700 ms) applies
    assert response.status_code == 504
    assert time.monotonic() - began < 20  # far from the 30 s the tool asked for
    assert "0.7 s" in response.json()["message"]
    agent.wait_for(
        lambda: cancel_log.exists() and cancel_log.read_text().strip(), 5, "notifications/cancelled"
    )
    # a per-call timeout_ms wins over the server's
    assert agent.call("slow__sleep", {"seconds": 0.9}, timeout_ms=5000).status_code == 200
    assert agent.call("slow__sleep", {"seconds": 30}, timeout_ms=200).status_code == 504
    assert agent.server("slow")["state"] == "ready"  # a timeout is not a death


def test_disabled_and_invalid_entries_are_listed_but_never_started(start_agent) -> None:
    agent = start_agent(
        {
            "off": {**fixture_server("crash_during_call.py"), "disabled": True},
            "broken": {"type": "carrier-pigeon"},
            "ok": fixture_server("crash_during_call.py"),
        }
    )
    agent.wait_state("ok", "ready")
    servers = agent.servers()
    assert servers["off"]["state"] == "disabled" and servers["off"]["error"] is None
    assert servers["broken"]["state"] == "failed" and "unknown type" in servers["broken"]["error"]
    assert [n for n in agent.tool_names() if not n.startswith("ok__")] == []


def test_stdio_child_gets_the_agent_environment_plus_env_and_runs_in_the_workspace(
    start_agent, workspace_dir
) -> None:
    (workspace_dir / "sub").mkdir()
    probe = (
        "import os, json, sys; json.dump({'cwd': os.getcwd(), 'inherited': os.environ.get('FROM_AGENT'),"
        " 'overlaid': os.environ.get('FROM_CONFIG')}, open(sys.argv[1], 'w'))"
    )
    out_default, out_sub = workspace_dir / "default.json", workspace_dir / "sub.json"
    script = str(Path(__file__).parent.parent / "fixtures" / "servers" / "crash_during_call.py")
    entry = {
        "command": "sh",
        "args": ["-c", f'{os.sys.executable} -c "$0" "$1"; exec {os.sys.executable} {script}'],
        "env": {"FROM_CONFIG": "overlay"},
    }
    agent = start_agent(
        {
            "a": {**entry, "args": [*entry["args"], probe, str(out_default)]},
            "b": {**entry, "args": [*entry["args"], probe, str(out_sub)], "cwd": "sub"},
        },
        env={"FROM_AGENT": "inherited"},
    )
    agent.wait_state("a", "ready")
    agent.wait_state("b", "ready")
    default = json.loads(out_default.read_text())
    assert default == {"cwd": str(workspace_dir), "inherited": "inherited", "overlaid": "overlay"}
    assert json.loads(out_sub.read_text())["cwd"] == str(workspace_dir / "sub")


def test_shutdown_ends_every_process_group_even_with_a_hung_server(start_agent, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    agent = start_agent(
        {
            "wrapped": fixture_server("grandchild_wrapper.py", GRANDCHILD_PID_FILE=str(pid_file)),
            "hung": fixture_server("hang_initialize.py"),
            "slow": fixture_server("slow_tool.py"),
        }
    )
    agent.wait_state("wrapped", "ready")
    agent.wait_state("slow", "ready")
    grandchild = psutil.Process(
        int(
            agent.wait_for(
                lambda: pid_file.exists() and pid_file.read_text().strip(), 5, "the grandchild's pid"
            )
        )
    )
    assert grandchild.is_running()
    took = agent.stop()  # asserts that no process the agent started outlived it
    assert took < 10
    assert not grandchild.is_running() or grandchild.status() == psutil.STATUS_ZOMBIE


@pytest.mark.parametrize("target", ["/api/v0/mcp/call-tool", "/api/v0/mcp/call-tool?via=asgi"])
def test_shutdown_lets_calls_in_flight_finish_for_a_grace_then_ends_the_rest(
    start_agent, tmp_path: Path, target: str
) -> None:
    """SIGTERM: a call that ends within the grace is answered (and its connection closed); one that
    outlasts it gets uvicorn's 500, on the protocol's fast path as on the ASGI route."""
    from tests.support import raw_http

    call_log = tmp_path / "calls.jsonl"
    agent = start_agent({"slow": fixture_server("slow_tool.py", CALL_LOG=str(call_log))})
    agent.wait_state("slow", "ready")
    with raw_http.Connection(agent.port) as quick, raw_http.Connection(agent.port) as stuck:
        quick.send(raw_http.call("slow__sleep", {"seconds": 0.5}, target=target))
        stuck.send(raw_http.call("slow__sleep", {"seconds": 60}, target=target))
        agent.wait_for(
            lambda: call_log.exists() and len(call_log.read_text().splitlines()) == 2,
            10,
            "both calls to start",
        )
        assert agent.stop() < 10
        answered = quick.read()
        assert answered.status == 200 and answered.header("connection") == "close"
        assert answered.json()["content"][0]["text"] == "slept 0.5 seconds"
        ended = stuck.read()
        assert (ended.status, ended.body, ended.header("connection")) == (
            500,
            b"Internal Server Error",
            "close",
        )
        assert quick.at_eof() and stuck.at_eof()


def test_an_http_server_that_dies_gives_502_and_is_reconnected(
    start_agent, spawn, everything_bin, tmp_path: Path
) -> None:
    from tests.conftest import start_everything
    from tests.support import processes

    port = start_everything(spawn, everything_bin, "streamableHttp", tmp_path / "first.log")
    agent = start_agent({"remote": {"url": f"http://127.0.0.1:{port}/mcp"}})
    agent.wait_state("remote", "ready")
    processes.stop_group(_group_listening_on(port))
    response = agent.call("remote__echo", {"message": "anyone?"})
    assert response.status_code == 502
    agent.wait_for(lambda: agent.server("remote")["state"] in ("restarting", "failed"), 5, "the loss to show")
    start_everything(spawn, everything_bin, "streamableHttp", tmp_path / "second.log", port=port)
    back = agent.wait_state("remote", "ready", timeout=20)
    assert back["restarts"] == 1
    assert text_of(agent.call("remote__echo", {"message": "back"})) == "Echo: back"


def _group_listening_on(port: int) -> int:
    """The process group of the test's child that listens on ``port``."""
    for proc in psutil.Process().children(recursive=True):
        try:
            if any(
                c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in proc.net_connections("tcp")
            ):
                return os.getpgid(proc.pid)
        except (psutil.Error, ProcessLookupError):
            continue
    raise AssertionError(f"nothing listens on {port}")


def test_the_era_found_first_is_reused_on_reconnect(start_agent, tmp_path: Path) -> None:
    """After a restart the agent opens the handshake of the era it found, with no new discovery probe."""
    servers = {
        name: fixture_server(
            "crash_during_call.py",
            METHOD_LOG=str(tmp_path / f"{name}.log"),
            **({"FIXTURE_ERA": era} if era else {}),
        )
        for name, era in (("modern", None), ("legacy", "legacy"))
    }
    agent = start_agent(servers)
    for name in servers:
        first = agent.wait_state(name, "ready")
        assert agent.call(f"{name}__crash").status_code == 502
        again = agent.wait_for(
            lambda n=name: (s := agent.server(n))["state"] == "ready" and s["restarts"] == 1 and s,
            15,
            f"{name} to come back",
        )
        assert again["protocol_version"] == first["protocol_version"]
        methods = (tmp_path / f"{name}.log").read_text().split()
        assert methods.count("server/discover") == 1, methods  # probed once, on the first connect only
    assert agent.server("legacy")["protocol_version"] == "2025-11-25"
    assert agent.server("modern")["protocol_version"] == "2026-07-28"


def test_sigint_shuts_down_like_sigterm(start_agent, tmp_path: Path) -> None:
    import signal
    import subprocess

    pid_file = tmp_path / "grandchild.pid"
    agent = start_agent(
        {
            "wrapped": fixture_server("grandchild_wrapper.py", GRANDCHILD_PID_FILE=str(pid_file)),
            "hung": fixture_server("hang_initialize.py"),
        }
    )
    agent.wait_state("wrapped", "ready")
    started = agent.descendants()
    assert len(started) >= 3  # the wrapper, its grandchild, the hung server
    agent.process.send_signal(signal.SIGINT)
    try:
        agent.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError("the agent did not exit within 10 s of SIGINT") from None
    survivors = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not survivors, [p.cmdline() for p in survivors]


def test_a_server_that_exits_at_start_says_why(start_agent) -> None:
    agent = start_agent(
        {"broken": {"command": sys.executable, "args": ["-c", "import no_such_module_for_workdock"]}}
    )
    failed = agent.wait_state("broken", "failed")
    assert failed["error"].startswith("the server process ended before it was ready")
    assert "No module named 'no_such_module_for_workdock'" in failed["error"]
    assert any("Traceback" in line for line in failed["stderr_tail"])


# The plain call is answered by the agent's HTTP protocol; with a query string, by the ASGI route.
@pytest.mark.parametrize("target", ["/api/v0/mcp/call-tool", "/api/v0/mcp/call-tool?via=asgi"])
def test_a_caller_that_hangs_up_cancels_the_call_upstream(start_agent, tmp_path: Path, target: str) -> None:
    """An interrupted chat turn drops its HTTP request; the server must hear the call is cancelled."""
    import httpx2

    from tests.support.agent import TOKEN

    cancel_log = tmp_path / "cancelled.jsonl"
    agent = start_agent({"slow": fixture_server("slow_tool.py", CANCEL_LOG=str(cancel_log))})
    agent.wait_state("slow", "ready")
    with httpx2.Client(base_url=agent.url, headers={"Authorization": f"Bearer {TOKEN}"}) as impatient:
        try:
            impatient.post(
                target,
                json={"tool_name": "slow__sleep", "arguments": {"seconds": 60}},
                timeout=1.0,
            )
        except httpx2.TimeoutException:
            pass  # we hung up after a second, as an interrupted turn does
    agent.wait_for(
        lambda: cancel_log.exists() and cancel_log.read_text().strip(),
        5,
        "notifications/cancelled to reach the server",
    )
    assert agent.server("slow")["state"] == "ready"
