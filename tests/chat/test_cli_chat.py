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
