"""The chat server's record of web sign-ins waiting for their callback, on SQLite and PostgreSQL:
once, for one user, for a while, only so many, and the same record whichever replica reads it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from tests.chat.test_store import _insert_row, database_url, store  # noqa: F401
from workdock.chat.signins import PendingSignIn, PendingSignIns
from workdock.chat.store.db import MIGRATIONS, create_engine, migrate
from workdock.chat.store.repo import Store
from workdock.secretbox import SecretBox, new_key, parse_key

pytestmark = pytest.mark.anyio


def _upgrade_sealed_to(connection: Connection, box: SecretBox, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["secret_box"] = box
    command.upgrade(config, revision)


async def _workspace(store: Store, name: str = "alice") -> tuple[str, str]:
    user = await store.create_user(name)
    workspace = await store.create_workspace(user.id, "w", "http://127.0.0.1:9", "t")
    return user.id, workspace.id


async def test_a_state_is_taken_once_and_only_by_the_user_who_started_it(store: Store) -> None:
    alice, ws = await _workspace(store)
    mallory, _ = await _workspace(store, "mallory")
    signins = PendingSignIns(store)
    await signins.add("s1", PendingSignIn(alice, "workspace", "github", workspace_id=ws))
    assert await signins.take("s1", mallory) is None  # someone else's session: refused, still waiting
    taken = await signins.take("s1", alice)
    assert taken is not None and (taken.workspace_id, taken.server) == (ws, "github")
    assert await signins.take("s1", alice) is None  # replayed
    assert await signins.take("never", alice) is None


async def test_one_winner_when_the_callback_comes_twice_at_once(store: Store) -> None:
    alice, ws = await _workspace(store)
    first, second = PendingSignIns(store), PendingSignIns(store)  # as two replicas
    await first.add("s1", PendingSignIn(alice, "workspace", "github", workspace_id=ws))
    taken: list[object] = []

    async def take(signins: PendingSignIns) -> None:
        taken.append(await signins.take("s1", alice))

    async with anyio.create_task_group() as tg:
        for signins in (first, second) * 5:
            tg.start_soon(take, signins)
    assert len([t for t in taken if t is not None]) == 1


async def test_a_new_start_of_the_same_server_voids_the_earlier_one(store: Store) -> None:
    alice, ws = await _workspace(store)
    signins = PendingSignIns(store)
    await signins.add("old", PendingSignIn(alice, "workspace", "github", workspace_id=ws))
    await signins.add("other", PendingSignIn(alice, "workspace", "notion", workspace_id=ws))
    await signins.add("new", PendingSignIn(alice, "workspace", "github", workspace_id=ws))
    assert await signins.take("old", alice) is None
    assert await signins.take("new", alice) is not None
    assert await signins.take("other", alice) is not None


async def test_records_expire_and_are_bounded(store: Store) -> None:
    alice, ws = await _workspace(store)
    expired = PendingSignIns(store, ttl=-1.0)  # expired as soon as made
    await expired.add("s", PendingSignIn(alice, "workspace", "github", workspace_id=ws))
    assert await expired.take("s", alice) is None
    bounded = PendingSignIns(store, limit=3)
    for n in range(5):
        await bounded.add(f"s{n}", PendingSignIn(alice, "workspace", f"server{n}", workspace_id=ws))
    assert await bounded.count() == 3
    assert await bounded.take("s0", alice) is None and await bounded.take("s4", alice) is not None


async def test_an_admin_servers_sign_in_is_told_apart_and_names_its_replica(store: Store) -> None:
    alice, ws = await _workspace(store)
    server = await store.create_mcp_server(slug="acct", url="http://127.0.0.1:9/mcp", auth="oauth")
    signins = PendingSignIns(store)
    admin = PendingSignIn(alice, "admin", "acct", mcp_server_id=server.id, replica_id="r1")
    await signins.add("a1", admin)
    await signins.add("w1", PendingSignIn(alice, "workspace", "acct", workspace_id=ws))  # same name
    await signins.add("a2", admin)  # started again: the first link is void, the workspace's stays
    assert await signins.take("a1", alice) is None
    assert await signins.take("a2", alice) == admin
    taken = await signins.take("w1", alice)
    assert taken is not None and (taken.kind, taken.workspace_id, taken.replica_id) == ("workspace", ws, None)
    await signins.add("a3", admin)
    await store.delete_mcp_server(server.id)  # its pending sign-ins go with it
    assert await signins.take("a3", alice) is None


async def test_the_migration_keeps_servers_shared_and_pending_sign_ins_of_workspaces(
    database_url: str,
) -> None:
    """A database from before per-user sign-in: its servers stay shared (static headers), its
    waiting sign-ins stay workspace ones and can still be taken."""
    engine = create_engine(database_url)
    box = SecretBox(parse_key(new_key()))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_sealed_to, box, "0014")
            then = datetime(2026, 1, 1, tzinfo=UTC)
            await _insert_row(connection, "users", id="u", name="ann", is_admin=False, created_at=then)
            await _insert_row(
                connection,
                "workspaces",
                id="w",
                user_id="u",
                name="w",
                agent_url="http://127.0.0.1:9",
                agent_token=box.seal("s"),
                created_at=then,
            )
            await _insert_row(
                connection,
                "mcp_servers",
                id="m",
                slug="old",
                url="http://127.0.0.1:9/mcp",
                transport="http",
                headers={"X-Key": box.seal("k")},
                allow_tools=[],
                deny_tools=[],
                enabled=True,
                created_at=then,
                updated_at=then,
            )
            await _insert_row(
                connection,
                "pending_signins",
                state_hash=hashlib.sha256(b"st").hexdigest(),
                user_id="u",
                workspace_id="w",
                server="github",
                expires_at=datetime.now(UTC) + timedelta(minutes=5),
            )
        await migrate(engine, box)
        store = Store(engine, box)
        try:
            [server] = await store.list_mcp_servers()
            assert (server.auth, server.oauth, server.headers) == ("headers", None, {"X-Key": "k"})
            taken = await PendingSignIns(store).take("st", "u")
            assert taken == PendingSignIn("u", "workspace", "github", workspace_id="w")
        finally:
            store.close()
    finally:
        await engine.dispose()
