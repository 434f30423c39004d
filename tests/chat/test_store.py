"""The store on both databases: migrations, tokens, atomic steps, the queue, cascades."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, column, text
from sqlalchemy import table as sa_table
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import FakeOpenAI, Reply
from tests.chat.test_turn_e2e import turn_ended
from tests.support import postgres
from workdock.chat.store.db import (
    MIGRATIONS,
    create_engine,
    head_revision,
    migrate,
    normalize_url,
    sqlite_url,
)
from workdock.chat.store.leases import Leases
from workdock.chat.store.models import QueuedMessage, utcnow
from workdock.chat.store.repo import NewMessage, RerunRefused, Store
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


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _upgrade_to(connection: Connection, revision: str) -> None:
    config = _alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def _insert_row(connection: AsyncConnection, table_name: str, **values: object) -> None:
    """Insert exactly these columns, whatever the current models add (for rows of an old schema)."""
    table = sa_table(
        table_name,
        *(column(name, JSON if isinstance(value, list | dict) else None) for name, value in values.items()),
    )
    await connection.execute(table.insert().values(**values))


async def test_schema_is_at_the_newest_revision(store: Store) -> None:
    async with store.engine.connect() as conn:
        current = (await conn.execute(text("select version_num from alembic_version"))).scalar()
    assert current == head_revision()


async def test_the_link_migration_keeps_existing_workspaces_direct(database_url: str) -> None:
    """A database made before linked workspaces existed: its rows become direct ones, unchanged."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to, "0001")
            then = datetime(2026, 1, 1, tzinfo=UTC)
            await _insert_row(conn, "users", id="u1", name="ann", is_admin=False, created_at=then)
            await _insert_row(
                conn,
                "workspaces",
                id="w1",
                user_id="u1",
                name="old",
                agent_url="http://127.0.0.1:4571",
                agent_token="secret",
                created_at=then,
            )
        box = SecretBox(parse_key(new_key()))
        await migrate(engine, box)
        store = Store(engine, box)
        old = await store.get_workspace("w1")
        assert old is not None and old.connection == "direct" and not old.linked
        assert (old.agent_url, old.agent_token, old.agent_token_hash) == (
            "http://127.0.0.1:4571",
            "secret",
            None,
        )
        linked, token = await store.create_linked_workspace("u1", "new")
        assert linked.agent_url is None and linked.agent_token is None
        assert linked.agent_token_hash is not None and token not in linked.agent_token_hash
        assert (await store.workspace_for_agent_token(token)).id == linked.id
        assert await store.workspace_for_agent_token(token + "x") is None
        assert await store.workspace_for_agent_token("secret") is None  # a direct agent's token links nothing
        rotated = await store.rotate_agent_token(linked.id)
        assert await store.workspace_for_agent_token(token) is None
        assert (await store.workspace_for_agent_token(rotated)).id == linked.id
        store.close()
    finally:
        await engine.dispose()


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
    assert first is not None and first.message.parts == [{"type": "text", "text": "first ✓"}]
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
    # The server stopped: a chat marked running that nobody holds is claimed and taken over.
    leases = Leases(store, ttl=30)
    [claim] = await leases.claim("replica-2", limit=5)
    assert (claim.chat_id, claim.status) == (chat.id, "running")
    taken = await leases.take_over(chat.id, "replica-2")
    assert [row.parts[0]["reason"] for row in taken.rows] == ["server"]
    assert (await store.get_chat(chat.id)).status == "interrupted"
    assert (await store.list_messages(chat.id))[-1].parts[0]["reason"] == "server"
    assert await store.has_queue(chat.id)
    # Deleting the workspace removes its chats, their messages and queue.
    assert await store.delete_workspace(workspace.id, user.id)
    assert await store.get_chat(chat.id) is None
    assert list(await store.list_messages(chat.id)) == []
    assert not await store.has_queue(chat.id)


async def test_a_rerun_supersedes_the_last_turn_when_it_starts(store: Store) -> None:
    user = await store.create_user("cy")
    workspace = await store.create_workspace(user.id, "w", "http://127.0.0.1:9", "secret", path="/srv/w")
    assert (await store.get_workspace(workspace.id)).path == "/srv/w"
    chat = await store.create_chat(user.id, workspace.id, title=None, model=None)
    with pytest.raises(RerunRefused, match="nothing to retry"):
        await store.enqueue_rerun(chat.id)
    await store.enqueue(chat.id, "one")
    first = await store.start_next_turn(chat.id)
    assert first is not None and first.superseded == []
    with pytest.raises(RerunRefused, match="a turn is running"):
        await store.enqueue_rerun(chat.id)
    await store.add_messages(
        chat.id, [NewMessage("assistant", [{"type": "text", "text": "a1"}])], status="idle"
    )
    await store.enqueue(chat.id, "two")
    with pytest.raises(RerunRefused, match="waiting"):
        await store.enqueue_rerun(chat.id)
    second = await store.start_next_turn(chat.id)
    assert second is not None
    replaced = await store.add_messages(
        chat.id, [NewMessage("assistant", [{"type": "error", "text": "boom"}])], status="error"
    )

    rerun = await store.enqueue_rerun(chat.id)
    assert (rerun.rerun_of, rerun.content) == (second.message.id, "two")
    start = await store.start_next_turn(chat.id)
    assert start is not None and start.message.id == second.message.id
    assert start.superseded == [replaced[0].id]
    assert (await store.get_chat(chat.id)).status == "running"
    assert [m.superseded for m in await store.list_messages(chat.id)] == [False, False, False, True]
    visible = await store.list_messages(chat.id, include_superseded=False)
    assert [m.parts[0]["text"] for m in visible] == ["one", "a1", "two"]
    await store.add_messages(
        chat.id, [NewMessage("assistant", [{"type": "text", "text": "a2"}])], status="idle"
    )

    # A retry that a message overtook (both queued at once, the message first) is dropped when its
    # turn would start: re-running the older turn then would hide the newer one.
    await store.enqueue(chat.id, "three")
    async with store.sessions.begin() as s:
        s.add(QueuedMessage(chat_id=chat.id, content="two", rerun_of=second.message.id, created_at=utcnow()))
    third = await store.start_next_turn(chat.id)
    assert third is not None and third.message.parts[0]["text"] == "three"
    await store.add_messages(
        chat.id, [NewMessage("assistant", [{"type": "text", "text": "a3"}])], status="idle"
    )
    assert await store.start_next_turn(chat.id) is None  # the stale retry went, nothing else ran
    assert not any(m.superseded for m in await store.list_messages(chat.id) if m.id != replaced[0].id)


async def test_the_migration_marks_chats_left_interrupted(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_to, "0001")
            # Rows as the 0001 schema holds them (only its columns are written).
            then = datetime(2026, 1, 1, tzinfo=UTC)
            await _insert_row(connection, "users", id="u", name="dee", is_admin=False, created_at=then)
            await _insert_row(
                connection,
                "workspaces",
                id="w",
                user_id="u",
                name="/home/dee/app",
                agent_url="http://127.0.0.1:9",
                agent_token="s",
                created_at=then,
            )
            for chat_id, status in (("cut", "interrupted"), ("fine", "idle")):
                await _insert_row(
                    connection,
                    "chats",
                    id=chat_id,
                    user_id="u",
                    workspace_id="w",
                    title="t",
                    model=None,
                    status=status,
                    use_admin_servers=True,
                    created_at=then,
                    updated_at=then,
                )
        box = SecretBox(parse_key(new_key()))
        await migrate(engine, box)
        store = Store(engine, box)
        try:
            [mark] = await store.list_messages("cut")
            assert mark.role == "assistant" and mark.parts == [
                {"type": "interrupted", "text": "Interrupted."}
            ]
            assert not mark.superseded
            assert list(await store.list_messages("fine")) == []
            assert (await store.get_workspace("w")).path is None
        finally:
            store.close()
    finally:
        await engine.dispose()


async def test_migrations_keep_the_rows_that_reference_a_rebuilt_table(database_url: str) -> None:
    """SQLite rebuilds a table to alter it; the rows pointing at it (chats, messages) must survive."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_to, "0001")
            then = datetime(2026, 1, 1, tzinfo=UTC)
            await _insert_row(connection, "users", id="u", name="eve", is_admin=False, created_at=then)
            await _insert_row(
                connection,
                "workspaces",
                id="w",
                user_id="u",
                name="w",
                agent_url="http://127.0.0.1:9",
                agent_token="s",
                created_at=then,
            )
            await _insert_row(
                connection,
                "chats",
                id="c",
                user_id="u",
                workspace_id="w",
                title="t",
                model=None,
                status="idle",
                use_admin_servers=True,
                created_at=then,
                updated_at=then,
            )
            await _insert_row(
                connection,
                "messages",
                chat_id="c",
                role="user",
                parts=[{"type": "text", "text": "kept"}],
                created_at=then,
            )
        box = SecretBox(parse_key(new_key()))
        await migrate(engine, box)
        store = Store(engine, box)
        try:
            assert await store.get_chat("c") is not None
            [message] = await store.list_messages("c")
            assert message.parts == [{"type": "text", "text": "kept"}]
        finally:
            store.close()
    finally:
        await engine.dispose()


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


async def test_queued_parts_become_the_user_message_and_old_queue_rows_stay_text(database_url: str) -> None:
    """Migration 0010: a message queued before it keeps its text; one queued after keeps its parts.
    (Each is taken in turn: the queue does not check the chat's status.)"""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to, "0001")  # later revisions need the key: migrate() runs them
            then = datetime(2026, 1, 1, tzinfo=UTC)
            await _insert_row(conn, "users", id="u1", name="ann", is_admin=False, created_at=then)
            await _insert_row(
                conn,
                "workspaces",
                id="w1",
                user_id="u1",
                name="old",
                agent_url="http://127.0.0.1:4571",
                agent_token="secret",
                created_at=then,
            )
            await _insert_row(
                conn,
                "chats",
                id="c1",
                user_id="u1",
                workspace_id="w1",
                title="t",
                status="idle",
                use_admin_servers=True,
                created_at=then,
                updated_at=then,
            )
            await _insert_row(conn, "queued_messages", chat_id="c1", content="queued before", created_at=then)
        box = SecretBox(parse_key(new_key()))
        await migrate(engine, box)
        store = Store(engine, box)
        parts = [
            {"type": "text", "text": "see this"},
            {"type": "resource", "uri": "x://y", "server": "s", "source": "workspace", "content": []},
        ]
        await store.enqueue("c1", "see this", parts=parts)
        first = await store.start_next_turn("c1")
        assert first is not None and first.message.parts == [{"type": "text", "text": "queued before"}]
        second = await store.start_next_turn("c1")
        assert second is not None and second.message.parts == parts
        store.close()
    finally:
        await engine.dispose()
