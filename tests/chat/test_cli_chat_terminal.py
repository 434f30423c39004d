"""`workdock chat` in a real pseudo-terminal (pexpect): a resumed chat shows its last messages under
a header naming its workspace, model and tools; markdown is rendered; Ctrl-C stops the running turn
and the chat stays open; Ctrl-D quits; the chat list gives human times; a call that needs approval
is asked at the prompt."""

from __future__ import annotations

import io
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import new_chat
from tests.support.agent import RunningAgent, fixture_server
from tests.support.helpers import wait_until

pytestmark = pytest.mark.anyio

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
ANSWER = "The answer is **3**.\n\n| left | right |\n|------|-------|\n| one  | two   |\n"


def plain(text: str) -> str:
    """What a person sees: the terminal's control sequences taken out."""
    return ANSI.sub("", text)


@pytest.fixture
def terminal(chat_server: ChatServer) -> Iterator[Callable[..., pexpect.spawn]]:
    children: list[pexpect.spawn] = []

    def spawn(*args: str) -> pexpect.spawn:
        child = pexpect.spawn(
            sys.executable,
            [
                *("-m", "workdock.chat.cli_chat", "--server", chat_server.url),
                *("--token", chat_server.admin_token, *args),
            ],
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "40"},
            dimensions=(40, 100),
            encoding="utf-8",
            timeout=30,
        )
        child.logfile_read = io.StringIO()
        children.append(child)
        return child

    yield spawn
    for child in children:
        if child.isalive():
            child.terminate(force=True)
        child.close()


def seen(child: pexpect.spawn) -> str:
    return plain(child.logfile_read.getvalue())


async def test_resume_render_interrupt_and_quit(
    admin_api: Api,
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    terminal: Callable[..., pexpect.spawn],
) -> None:
    agent = start_agent({"ok": fixture_server("crash_during_call.py")})
    agent.wait_state("ok", "ready")
    chat_id = await new_chat(admin_api, agent.url, title="arithmetic")
    fake_model.add(Reply(text=ANSWER))
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "what is 1+2?"}, expect=202)
    await admin_api.wait_status(chat_id, "idle")

    child = terminal("--chat", chat_id)
    # The header: title, workspace, model and how many tools the next turn gets.
    child.expect(r"arithmetic.*workspace ws · model openai:fake-model · (\d+) tools")
    assert int(child.match.group(1)) >= 9  # 7 built-ins and the server's 2
    # The history: the question and the answer, rendered.
    child.expect("Ctrl-C stops a turn, Ctrl-D quits")  # after the history, before the prompt
    child.expect("› ")
    history = seen(child)
    assert "› what is 1+2?" in history and "The answer is 3." in history
    assert "**" not in history and "|------|" not in history  # markdown rendered, not shown raw
    assert re.search(r"left\s+[│┃]?\s*right", history) and ("━" in history or "─" in history)

    # A long turn: Ctrl-C stops it, and the chat stays open.
    hold = threading.Event()
    fake_model.add(Reply(text="this would take long", hold=hold))
    asked = len(fake_model.requests)
    try:
        child.sendline("take your time")
        # Interrupt only once the model holds the request: a turn stopped before it asks would
        # leave this reply for the next turn.
        await wait_until(
            lambda: len(fake_model.requests) > asked, timeout=30, message="the model to be asked"
        )
        child.sendintr()
        child.expect("interrupted")
        child.expect("› ")
    finally:
        hold.set()
    assert child.isalive()
    assert (await admin_api.wait_status(chat_id, "interrupted"))["status"] == "interrupted"

    # The next message runs as usual.
    fake_model.add(Reply(text="Back with **bold** news."))
    child.sendline("again")
    child.expect(r"news\.")
    child.expect("› ")
    assert "Back with bold news." in seen(child)
    # Ctrl-C at the prompt only says how to quit; Ctrl-D quits.
    child.sendintr()
    child.expect(r"\(Ctrl-D quits\)")
    assert child.isalive()
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, seen(child)
    assert "Traceback" not in seen(child)


async def test_the_chat_list_says_when_in_words(
    admin_api: Api,
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    terminal: Callable[..., pexpect.spawn],
) -> None:
    agent = start_agent({})
    chat_id = await new_chat(admin_api, agent.url, title="listed chat")
    fake_model.add(Reply(text="hello there"))
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "hi"}, expect=202)
    await admin_api.wait_status(chat_id, "idle")

    child = terminal()
    child.expect("chat number, or Enter for a new chat: ")
    listing = seen(child)
    assert re.search(r"1\s.*listed chat\s.*ws\s.*idle\s.*just now", listing), listing
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:", listing)  # no raw ISO times
    child.sendline("1")
    child.expect("Ctrl-D quits")
    history = seen(child)
    assert "› hi" in history and "hello there" in history  # the chosen chat's history
    child.expect("› ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


async def test_the_chat_list_offers_the_twenty_most_recent_and_says_how_to_open_older_ones(
    admin_api: Api, start_agent: Callable[..., RunningAgent], terminal: Callable[..., pexpect.spawn]
) -> None:
    agent = start_agent({})
    for index in range(21):
        await new_chat(admin_api, agent.url, title=f"chat number {index:02d}")

    child = terminal()
    child.expect("chat number, or Enter for a new chat: ")
    listing = " ".join(seen(child).split())  # the caption wraps under the table
    assert "the 20 most recently used; open an older one with --chat ID" in listing
    assert "chat number 20" in listing and "chat number 01" in listing
    assert "chat number 00" not in listing  # the oldest is left for --chat


async def test_a_call_to_approve_is_asked_at_the_prompt(
    admin_api: Api,
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    terminal: Callable[..., pexpect.spawn],
    workspace_dir: Path,
) -> None:
    agent = start_agent({})
    chat_id = await new_chat(admin_api, agent.url, title="careful", approval_policy="ask")
    child = terminal("--chat", chat_id)
    child.expect("› ")

    # Denied with a reason: the model reads it, nothing runs.
    fake_model.add(Reply(calls=[Call("execute", {"command": "touch ran.txt"})]), Reply(text="Fine, not run."))
    child.sendline("run it")
    child.expect(r"allow execute\? \[y\]es, \[n\]o, \[a\]lways in this chat: ")
    child.sendline("n")
    child.expect(r"reason \(Enter for none\): ")
    child.sendline("not today")
    child.expect(r"Fine, not run\.")
    child.expect("› ")
    assert "✗ execute denied" in seen(child)
    assert not (workspace_dir / "ran.txt").exists()
    assert "not today" in str(fake_model.tool_messages(1)[0]["content"])

    # Always: it runs, and the chat remembers it.
    fake_model.add(
        Reply(calls=[Call("write_file", {"path": "w.txt", "content": "w"})]), Reply(text="Written.")
    )
    child.sendline("write it")
    child.expect(r"allow write_file\? ")
    child.sendline("a")
    child.expect(r"Written\.")
    child.expect("› ")
    assert (workspace_dir / "w.txt").read_text() == "w"
    assert (await admin_api.get(f"/chats/{chat_id}"))["always_allow"] == ["write_file"]
    child.sendeof()
    child.expect(pexpect.EOF)
