"""The history kept between turns: the model is sent exactly what a whole reload would send it,
through retries and edits, and the copy kept stays bounded."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.support.agent import RunningAgent
from workdock.chat.context import FitMemo, HistoryFitter
from workdock.chat.convert import HistoryBuilder, to_model_messages
from workdock.chat.history_cache import CHATS_ENV, HistoryCache
from workdock.chat.store.db import create_engine, migrate, sqlite_url
from workdock.chat.store.models import Message
from workdock.chat.store.repo import NewMessage, Store
from workdock.secretbox import SecretBox, new_key, parse_key

pytestmark = pytest.mark.anyio

TURNS = 12


async def _script(api: Api, fake: FakeOpenAI, chat_id: str) -> list[dict[str, Any]]:
    """A long chat: tool calls (one failing), plain answers, a retry and an edit in the middle;
    the requests the model received for it."""
    first = len(fake.requests)

    async def turn(content: str, *replies: Reply, retry: dict[str, Any] | None = None) -> None:
        fake.add(*replies)
        if retry is not None:
            await api.post(f"/chats/{chat_id}/retry", retry, expect=202)
        else:
            await api.post(f"/chats/{chat_id}/messages", {"content": content}, expect=202)
        await api.events(chat_id, turn_ended())

    for i in range(TURNS):
        if i % 3 == 0:
            path = "notes.txt" if i % 2 == 0 else "missing.txt"
            await turn(
                f"read {path} ({i})",
                Reply(text=f"Reading {i}.", calls=[Call("read_file", {"path": path}, id=f"c{i}")]),
                Reply(text=f"It says something ({i})."),
            )
        else:
            await turn(f"question {i}", Reply(text=f"answer {i}"))
        if i == 4:
            await turn("", Reply(text="answer 4, again"), retry={})
        if i == 7:
            await turn("", Reply(text="an edited answer"), retry={"content": "question 7, edited"})
    return fake.requests[first:]


def _sent(requests: list[dict[str, Any]]) -> list[str]:
    return [
        json.dumps({"messages": r["messages"], "tools": r.get("tools")}, sort_keys=True) for r in requests
    ]


async def test_the_model_is_sent_what_a_whole_reload_would_send(
    start_chat_server: Callable[..., ChatServer],
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    workspace_dir: Path,
    tmp_path: Path,
) -> None:
    (workspace_dir / "notes.txt").write_text("the notes\n")
    agent = start_agent({})
    sent: dict[str, list[str]] = {}
    for kept in ("0", "64"):  # 0: every turn loads and converts the whole history, as before
        server = start_chat_server(data_dir=tmp_path / f"data-{kept}", env={CHATS_ENV: kept})
        api = Api(server.url, server.admin_token)
        try:
            chat_id = await new_chat(api, agent.url)
            sent[kept] = _sent(await _script(api, fake_model, chat_id))
        finally:
            await api.aclose()
        server.stop()
    assert len(sent["0"]) == TURNS + 4 + 2  # a request per step: 4 tool turns, a retry, an edit
    assert sent["64"] == sent["0"]
    last = json.loads(sent["64"][-1])["messages"]
    assert "question 7, edited" in json.dumps(last) and "answer 4, again" in json.dumps(last)
    assert '"answer 4"' not in json.dumps(last)  # the retried answer is superseded


def _plain(messages: list[ModelMessage]) -> Any:
    """The messages as data, without the timestamps each conversion stamps afresh."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "timestamp"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(ModelMessagesTypeAdapter.dump_python(messages, mode="json"))


def _rows() -> list[Message]:
    def row(i: int, role: str, *parts: dict[str, Any]) -> Message:
        return Message(
            id=i, chat_id="c", role=role, parts=list(parts), model="m" if role == "assistant" else None
        )

    call = {"type": "tool-call", "tool_call_id": "a", "tool_name": "t", "args": {"x": 1}}
    result = {"type": "tool-result", "tool_call_id": "a", "tool_name": "t", "is_error": False}
    return [
        row(1, "user", {"type": "text", "text": "hi"}),
        row(2, "assistant", {"type": "text", "text": "calling"}, call),
        row(3, "tool", {**result, "content": [{"type": "text", "text": "ok"}]}),
        row(4, "assistant", {"type": "text", "text": "done"}),
        row(5, "user", {"type": "text", "text": "again"}),
        row(6, "assistant", {**call, "tool_call_id": "b"}),  # interrupted: no result follows
        row(7, "user", {"type": "text", "text": "and now"}),
        row(8, "assistant", {**call, "tool_call_id": "c"}),
    ]


def test_rows_converted_a_few_at_a_time_give_the_whole_conversion() -> None:
    rows = _rows()
    whole = _plain(to_model_messages(rows))
    for split in range(len(rows) + 1):
        builder = HistoryBuilder()
        builder.add(rows[:split])
        halfway = _plain(builder.messages())
        assert halfway == _plain(to_model_messages(rows[:split]))
        builder.add(rows[split:])
        assert _plain(builder.messages()) == whole
    # The open call at the end is answered as interrupted, and only in what is sent.
    assert whole[-1]["parts"][0]["outcome"] == "interrupted"


def _long_rows(turns: int) -> list[Message]:
    """Turns of a question and one or two tool calls with large results (some in parallel)."""
    rows: list[Message] = []

    def add(role: str, *parts: dict[str, Any]) -> None:
        rows.append(
            Message(
                id=len(rows) + 1,
                chat_id="c",
                role=role,
                parts=list(parts),
                model="m" if role != "user" else None,
            )
        )

    for t in range(turns):
        add("user", {"type": "text", "text": f"question {t}"})
        calls = [f"t{t}a", f"t{t}b"] if t % 2 else [f"t{t}a"]
        add(
            "assistant",
            *({"type": "tool-call", "tool_call_id": c, "tool_name": "t", "args": {}} for c in calls),
        )
        add(
            "tool",
            *(
                {
                    "type": "tool-result",
                    "tool_call_id": c,
                    "tool_name": "t",
                    "is_error": False,
                    "content": [{"type": "text", "text": f"{c} " + "output line\n" * (200 + 37 * (t % 5))}],
                }
                for c in calls
            ),
        )
        add("assistant", {"type": "text", "text": f"answer {t}"})
    return rows


def test_fitting_with_the_memo_of_earlier_turns_sends_what_fitting_afresh_sends() -> None:
    rows = _long_rows(40)
    window = 20_000
    builder, memo = HistoryBuilder(), FitMemo()
    shortened = 0
    for turn, end in enumerate(range(4, len(rows) + 1, 4)):
        memo.keep(builder.add(rows[end - 4 : end]))
        for reserved in (500 + 300 * (turn % 4), 100):  # the tools' share changes between steps
            kept = HistoryFitter(window, memo).fit(builder.messages(), reserved)
            afresh = HistoryFitter(window).fit(to_model_messages(rows[:end]), reserved)
            assert _plain(kept) == _plain(afresh), f"turn {turn}, reserved {reserved}"
            shortened += sum("shortened for the model" in json.dumps(_plain([m])) for m in afresh)
    assert shortened and memo.short, "the history never reached the window: nothing was tested"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    engine = create_engine(sqlite_url(tmp_path / "cache.db"))
    box = SecretBox(parse_key(new_key()))
    await migrate(engine, box)
    store = Store(engine, box)
    yield store
    store.close()
    await engine.dispose()


async def _said(store: Store, chat_id: str, text: str) -> None:
    await store.add_messages(chat_id, [NewMessage("user", [{"type": "text", "text": text}])])


async def test_the_copy_kept_follows_appends_and_a_new_version_and_stays_bounded(store: Store) -> None:
    user = await store.create_user("u")
    workspace = await store.create_workspace(user.id, "w", "http://127.0.0.1:9", "t")
    chats = [await store.create_chat(user.id, workspace.id, title=None, model=None) for _ in range(3)]
    cache = HistoryCache(max_chats=2)
    one = chats[0]
    await _said(store, one.id, "first")
    kept = await cache.load(store, one)
    assert [r.parts[0]["text"] for r in kept.rows] == ["first"] and len(kept.messages) == 1
    await _said(store, one.id, "second")
    kept = await cache.load(store, one)
    assert [r.parts[0]["text"] for r in kept.rows] == ["first", "second"] and len(kept.messages) == 2

    # Another version (stored messages changed underneath): loaded whole again.
    async with store.sessions.begin() as s:
        first = (await store.list_messages(one.id))[0]
        changed = await s.get(Message, first.id)
        assert changed is not None
        changed.superseded = True
    one.history_version += 1
    kept = await cache.load(store, one)
    assert [r.parts[0]["text"] for r in kept.rows] == ["second"]

    # At most two chats: the least recently used goes.
    for chat in chats[1:]:
        await _said(store, chat.id, "hello")
        await cache.load(store, chat)
    assert len(cache) == 2
    cache.forget(chats[2].id)
    assert len(cache) == 1

    # A chat idle too long goes at the next load; none kept with max_chats 0.
    idle = HistoryCache(idle_s=0)
    await idle.load(store, chats[1])
    await idle.load(store, chats[2])
    assert len(idle) == 1
    off = HistoryCache(max_chats=0)
    assert len((await off.load(store, chats[1])).rows) == 1 and len(off) == 0
