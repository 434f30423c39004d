"""The built-in tools, each carried out by a real agent's workspace operations."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.chat.conftest import Api
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.support.agent import RunningAgent
from tests.support.helpers import wait_until_sync

pytestmark = pytest.mark.anyio


def _process_id(body: dict[str, Any]) -> str:
    """The background process id the model was told about in an earlier tool result."""
    for message in body["messages"]:
        if message.get("role") == "tool":
            found = re.search(r"process_id=(\S+)", str(message["content"]))
            if found:
                return found.group(1)
    raise AssertionError("no process id in the tool results")


def _ended(agent: RunningAgent, process_id: str) -> str:
    """Wait (in the fake model, before it answers) until the killed process is reaped."""

    def ended() -> bool:  # the listing, not the output: reading an ended process's output forgets it
        processes = agent.http.get("/api/v0/processes").json()["processes"]
        return not next(p for p in processes if p["id"] == process_id)["running"]

    wait_until_sync(ended, timeout=10, message="the killed process to be reaped")
    return process_id


async def test_every_builtin_tool_works_through_the_agent_and_bad_arguments_are_named(
    admin_api: Api, fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent], workspace_dir: Path
) -> None:
    agent = start_agent({})
    chat_id = await new_chat(admin_api, agent.url)
    fake_model.add(
        Reply(
            calls=[
                Call("write_file", {"path": "a/b.txt", "content": "one\ntwo\n"}),
                Call("execute", {"command": "echo out; exit 3"}),
                Call("execute", {"command": "sleep 60", "background": True}),
                Call("read_file", {"path": "a/b.txt", "limit": 0}),
            ]
        ),
        lambda body: Reply(
            calls=[
                Call(
                    "edit_files", {"files": [{"path": "a/b.txt", "edits": [{"old": "two", "new": "three"}]}]}
                ),
                Call("process_list", {}),
                Call("process_signal", {"process_id": _process_id(body), "signal": "KILL"}),
            ]
        ),
        lambda body: Reply(
            calls=[
                Call("process_output", {"process_id": _ended(agent, _process_id(body))}),
                Call("read_file", {"path": "a/b.txt"}),
                Call("process_signal", {"process_id": _process_id(body), "signal": "HUP"}),
            ]
        ),
        Reply(text="all done"),
    )

    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "use the built-ins"}, expect=202)
    await admin_api.events(chat_id, turn_ended(), timeout=60)

    messages = await admin_api.messages(chat_id)
    assert [m["role"] for m in messages] == ["user", *["assistant", "tool"] * 3, "assistant"]
    results = [
        [(p["tool_name"], p["is_error"], p["content"][0]["text"]) for p in m["parts"]]
        for m in messages
        if m["role"] == "tool"
    ]

    (write, fg, bg, bad_read), (edit, listing, kill), (output, read, bad_signal) = results
    assert not write[1] and '"created": true' in write[2]
    assert fg[1] and "out" in fg[2] and "[exit code 3]" in fg[2]  # a failing command is an error result
    assert not bg[1] and "process_id=" in bg[2]
    assert bad_read[1] and "invalid arguments for read_file" in bad_read[2] and "limit" in bad_read[2]
    assert not edit[1] and "-two" in edit[2] and "+three" in edit[2]
    assert not listing[1] and "sleep 60" in listing[2]
    assert not kill[1] and '"id"' in kill[2]
    assert not output[1] and "exited" in output[2], output
    assert not read[1] and "three" in read[2]
    assert bad_signal[1] and "invalid arguments for process_signal" in bad_signal[2]
    assert (workspace_dir / "a" / "b.txt").read_text() == "one\nthree\n"
