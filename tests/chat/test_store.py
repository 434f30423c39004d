"""The store on both databases: migrations, tokens, atomic steps, the queue, cascades."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import FakeOpenAI, Reply
from tests.chat.test_turn_e2e import turn_ended
from tests.support import postgres
from workdock.chat.store.db import create_engine, migrate, normalize_url, sqlite_url
from workdock.chat.store.repo import NewMessage, Store
from workdock.secretbox import SecretBox, new_key, parse_key

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "store.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    engine = create_engine(database_url)
    box = SecretBox(parse_key(new_key()))
    await migrate(engine, box)
    await migrate(engine, box)  # idempotent: runs on every start
    store = Store(engine, box)
    yield store
    store.close()
    await engine.dispose()


def test_database_urls_pick_the_async_drivers() -> None:
    assert normalize_url("postgresql://u:p@h:5/db") == "postgresql+asyncpg://u:p@h:5/db"
    assert normalize_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    with pytest.raises(ValueError):
        normalize_url("mysql://h/db")


async def test_schema_is_at_the_newest_revision(store: Store) -> None:
    async with store.engine.connect() as conn:
        assert (await conn.execute(text("select version_num from alembic_version"))).scalar() == "0002"


async def test_tokens_are_stored_hashed_and_login_codes_work_once(store: Store) -> None:
    user = await store.create_user("ann")
    token, plain = await store.create_token(user.id, "cli")
    assert token.token_hash != plain and plain not in token.token_hash
    assert (await store.user_for_token(plain)).id == user.id
    assert await store.user_for_token(plain + "x") is None
    _, code = await store.create_token(user.id, "login", kind="login", ttl=timedelta(hours=1))
    assert await store.user_for_token(code) is None  # a login code is not an API token
    assert (await store.redeem_login_code(code)).id == user.id
    assert await store.redeem_login_code(code) is None
    _, expired = await store.create_token(user.id, "old", kind="session", ttl=timedelta(seconds=-1))
    assert await store.user_for_token(expired) is None


async def test_steps_queue_and_restart_recovery(store: Store) -> None:
    user = await store.create_user("bo")
    workspace = await store.create_workspace(user.id, "w", "http://127.0.0.1:9", "secret")
    chat = await store.create_chat(user.id, workspace.id, title=None, model=None)
    await store.enqueue(chat.id, "first ✓")
    await store.enqueue(chat.id, "second")
    first = await store.start_next_turn(chat.id)
    assert first is not None and first.parts == [{"type": "text", "text": "first ✓"}]
    assert (await store.get_chat(chat.id)).status == "running"
    step = await store.add_messages(
        chat.id,
        [
            NewMessage(
                "assistant",
                [{"type": "tool-call", "tool_call_id": "c1", "tool_name": "t", "args": {"a": [1]}}],
                model="openai:x",
                usage={"input_tokens": 1, "output_tokens": 2},
            ),
            NewMessage(
                "tool",
                [
                    {
                        "type": "tool-result",
                        "tool_call_id": "c1",
                        "tool_name": "t",
                        "is_error": False,
                        "content": [{"type": "text", "text": "ok"}],
                        "duration_ms": 3,
                    }
                ],
            ),
        ],
    )
    assert step[0].id < step[1].id
    history = await store.list_messages(chat.id)
    assert [m.role for m in history] == ["user", "assistant", "tool"]
    assert history[1].parts[0]["args"] == {"a": [1]} and history[1].usage["output_tokens"] == 2
    assert [q.content for q in await store.list_queued(chat.id)] == ["second"]
    assert await store.interrupt_running_chats() == [chat.id]
    assert (await store.get_chat(chat.id)).status == "interrupted"
    assert await store.chats_with_queue() == [chat.id]
    # Deleting the workspace removes its chats, their messages and queue.
    assert await store.delete_workspace(workspace.id, user.id)
    assert await store.get_chat(chat.id) is None
    assert list(await store.list_messages(chat.id)) == []
    assert await store.chats_with_queue() == []


async def test_other_users_rows_are_not_found(store: Store) -> None:
    ann, bo = await store.create_user("ann2"), await store.create_user("bo2")
    workspace = await store.create_workspace(ann.id, "w", "http://127.0.0.1:9", "secret")
    chat = await store.create_chat(ann.id, workspace.id, title="t", model=None)
    assert await store.get_workspace(workspace.id, bo.id) is None
    assert await store.get_chat(chat.id, bo.id) is None
    assert not await store.delete_chat(chat.id, bo.id)
    assert not await store.delete_workspace(workspace.id, bo.id)
    assert (await store.get_chat(chat.id, ann.id)) is not None


@pytest.mark.postgres
async def test_a_turn_through_the_server_on_postgresql(
    start_chat_server, postgres_url: str, fake_model: FakeOpenAI
) -> None:
    server: ChatServer = start_chat_server(database_url=postgres_url)
    api = Api(server.url, server.admin_token)
    try:
        workspace = await api.post(
            "/workspaces", {"name": "w", "agent_url": "http://127.0.0.1:9", "agent_token": "t"}, expect=201
        )
        chat = await api.post("/chats", {"workspace_id": workspace["id"]}, expect=201)
        fake_model.add(Reply(text="stored in postgres"))
        await api.post(f"/chats/{chat['id']}/messages", {"content": "hi"}, expect=202)
        await api.events(chat["id"], turn_ended())
        messages = await api.messages(chat["id"])
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[1]["parts"] == [{"type": "text", "text": "stored in postgres"}]
    finally:
        await api.aclose()


def test_a_missing_postgresql_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "pg_bin", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL is not installed"):
        postgres.require_postgres()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL is not installed"):
        postgres.require_postgres()
