"""The stored side of approvals, on SQLite and PostgreSQL: the migration gives existing chats the
policy ``auto``; a waiting step's calls, their answers, "always", and a restart's recovery."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_approvals import pending
from tests.chat.test_store import _insert_row, _upgrade_to, database_url, store  # noqa: F401
from tests.chat.test_turn_e2e import new_chat
from tests.support.agent import RunningAgent
from workdock.chat.store.approvals import ApprovalStore, NotPending, WaitingCall
from workdock.chat.store.db import create_engine, migrate
from workdock.chat.store.repo import NewMessage, Store
from workdock.secretbox import SecretBox, new_key, parse_key

pytestmark = pytest.mark.anyio


async def test_the_migration_gives_existing_chats_the_auto_policy(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to, "0001")  # later ones need the secret key
            then = datetime(2026, 1, 1, tzinfo=UTC)
            await _insert_row(conn, "users", id="u1", name="ann", is_admin=False, created_at=then)
            await _insert_row(
                conn,
                "workspaces",
                id="w1",
                user_id="u1",
                name="old",
                agent_url="http://127.0.0.1:9",
                agent_token="s",
                created_at=then,
            )
            await _insert_row(
                conn,
                "chats",
                id="c1",
                user_id="u1",
                workspace_id="w1",
                title="old chat",
                status="idle",
                use_admin_servers=True,
                created_at=then,
                updated_at=then,
            )
        box = SecretBox(parse_key(new_key()))
        await migrate(engine, box)
        store = Store(engine, box)
        chat = await store.get_chat("c1")
        assert chat is not None and chat.approval_policy == "auto" and not chat.always_allow
        assert await store.get_setting("default_approval_policy", "auto") == "auto"
        store.close()
    finally:
        await engine.dispose()


async def test_a_waiting_step_is_stored_answered_and_survives_recovery(store: Store) -> None:
    user = await store.create_user("ann")
    workspace = await store.create_workspace(user.id, "w", "http://127.0.0.1:9", "t")
    chat = await store.create_chat(user.id, workspace.id, title=None, model=None, approval_policy="ask")
    await store.enqueue(chat.id, "go")
    start = await store.start_next_turn(chat.id)
    assert start is not None
    approvals = ApprovalStore(store)
    calls = [
        WaitingCall("a", "write_file", True),
        WaitingCall("b", "write_file", True),
        WaitingCall("c", "read_file", False),
    ]
    await approvals.begin_wait(
        chat.id, NewMessage("assistant", [{"type": "tool-call", "tool_call_id": "a"}]), calls
    )
    assert [c.tool_call_id for c in await approvals.pending(chat.id)] == ["a", "b"]

    # A restart: the waiting turn is taken up again.
    assert await approvals.waiting_chats() == [chat.id]
    resumed = await store.resume_turn(chat.id)
    assert resumed is not None and resumed.resume and resumed.message.id == start.message.id

    # Always: the tool is allowed in the chat and its other pending call is approved too.
    assert await approvals.answer(chat.id, "a", approve=True, reason=None, always=True) == ["a", "b"]
    assert (await store.get_chat(chat.id)).always_allow == ["write_file"]  # type: ignore[union-attr]
    with pytest.raises(NotPending) as again:
        await approvals.answer(chat.id, "b", approve=False, reason="x", always=False)
    assert again.value.status == 409
    with pytest.raises(NotPending) as unknown:
        await approvals.answer(chat.id, "zzz", approve=True, reason=None, always=False)
    assert unknown.value.status == 404

    await approvals.set_state(chat.id, "c", "done", result={"type": "tool-result", "tool_call_id": "c"})
    assert [c.result for c in await approvals.calls(chat.id)][2] == {
        "type": "tool-result",
        "tool_call_id": "c",
    }
    rows = await approvals.finish_step(
        chat.id, [NewMessage("tool", [{"type": "tool-result"}])], status="idle"
    )
    assert [r.role for r in rows] == ["tool"]
    assert await approvals.calls(chat.id) == [] and await approvals.waiting_chats() == []
    assert (await store.get_chat(chat.id)).status == "idle"  # type: ignore[union-attr]


@pytest.mark.postgres
async def test_an_approval_on_postgresql(
    start_chat_server: Callable[..., ChatServer],
    postgres_url: str,
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    workspace_dir: Path,
) -> None:
    agent = start_agent({})
    server = start_chat_server(database_url=postgres_url)
    api = Api(server.url, server.admin_token)
    try:
        chat_id = await new_chat(api, agent.url, approval_policy="ask")
        fake_model.add(
            Reply(calls=[Call("write_file", {"path": "pg.txt", "content": "pg"})]), Reply(text="ok")
        )
        await api.post(f"/chats/{chat_id}/messages", {"content": "go"}, expect=202)
        [waiting] = await pending(api, chat_id)
        await api.post(
            f"/chats/{chat_id}/approvals/{waiting['tool_call_id']}", {"approve": True, "always": True}
        )
        await api.wait_status(chat_id, "idle")
        assert (workspace_dir / "pg.txt").read_text() == "pg"
        assert (await api.get(f"/chats/{chat_id}"))["always_allow"] == ["write_file"]
    finally:
        await api.aclose()
