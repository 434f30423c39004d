"""`workdock chat --message`: one turn in the terminal; the exit code says whether it succeeded."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import new_chat
from tests.support.agent import RunningAgent

pytestmark = pytest.mark.anyio


def run_chat(server: ChatServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "workdock.chat.cli_chat",
            "--server",
            server.url,
            "--token",
            server.admin_token,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )


async def test_one_turn_shows_text_and_tool_calls_and_exits_0(
    chat_server: ChatServer,
    admin_api: Api,
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    workspace_dir: Path,
) -> None:
    agent = start_agent({})
    (workspace_dir / "a.txt").write_text("contents of a\n")
    chat_id = await new_chat(admin_api, agent.url)
    fake_model.add(
        Reply(
            text="Reading.",
            calls=[Call("read_file", {"path": "a.txt"}), Call("read_file", {"path": "missing.txt"})],
        ),
        Reply(text="All read."),
    )
    result = run_chat(chat_server, "--chat", chat_id, "--message", "read a.txt")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Reading." in out and "All read." in out
    assert "▶ read_file" in out and '"path": "a.txt"' in out
    assert "✓ read_file" in out and "ms)" in out and "contents of a" in out
    assert "✗ read_file" in out  # the missing file is an error result, shown as such


async def test_a_failed_turn_exits_non_zero(
    start_chat_server: Callable[..., Any], start_agent: Callable[..., RunningAgent]
) -> None:
    server = start_chat_server(env={"WORKDOCK_MODELS": ""})
    api = Api(server.url, server.admin_token)
    try:
        chat_id = await new_chat(api, start_agent({}).url)
    finally:
        await api.aclose()
    result = run_chat(server, "--chat", chat_id, "--message", "hello")
    assert result.returncode == 1
    assert "WORKDOCK_MODELS" in result.stdout


async def test_progress_output_and_a_question_answered_at_the_prompt(
    chat_server: ChatServer,
    admin_api: Api,
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
) -> None:
    from tests.support.agent import fixture_server

    agent = start_agent(
        {"slow": fixture_server("slow_tool.py"), "asks": fixture_server("asks_user.py", FIXTURE_ERA="legacy")}
    )
    agent.wait_state("slow", "ready")
    agent.wait_state("asks", "ready")
    chat_id = await new_chat(admin_api, agent.url)
    fake_model.add(
        Reply(
            calls=[
                Call("slow__sleep", {"seconds": 1}),
                Call("execute", {"command": "echo printed-live"}),
                Call("asks__ask", {"question": "Your name?"}),
            ]
        ),
        Reply(text="Answered."),
    )
    command = [sys.executable, "-m", "workdock.chat.cli_chat", "--server", chat_server.url]
    result = subprocess.run(
        [*command, "--token", chat_server.admin_token, "--chat", chat_id, "--message", "go"],
        input="a\nAda\n\nyes\n",  # accept; answer; count left at its default; sure
        capture_output=True,
        text=True,
        timeout=180,  # a deadline only: three tools and two model steps, on a loaded machine
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "… slow__sleep 1/1 slept 1.0 of 1 s" in out
    assert "printed-live" in out
    assert "? asks__ask asks: Your name?" in out
    assert "Answer* (string" in out and "Count (integer, default 1)" in out
    assert "accepted: Ada x1 sure=True" in out
    assert "Answered." in out
