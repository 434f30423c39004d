"""The database refuses writes (disk full, read-only): the client gets 507 or 503 in the one
error shape, and a chat whose turn is over is never left marked running."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import FakeOpenAI, Reply
from tests.chat.test_turn_e2e import turn_ended
from tests.support.helpers import wait_until
from tests.support.tmpfs import PrivateTmpfs, require_private_tmpfs

pytestmark = pytest.mark.anyio


@pytest.fixture
def tmpfs(tmp_path: Path) -> PrivateTmpfs:
    require_private_tmpfs()
    return PrivateTmpfs(tmp_path / "db")


def start_on_tmpfs(start: Callable[..., ChatServer], tmpfs: PrivateTmpfs, tmp_path: Path) -> ChatServer:
    # The database alone is on the tmpfs: the admin token file stays readable by the test.
    server = start(
        subprocess_mode=True,
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmpfs.path}/workdock.db",
        wrap=tmpfs.wrap(),
    )
    assert server.process is not None
    tmpfs.pid = server.process.pid
    return server


async def _new_chat(api: Api) -> str:
    workspace = await api.post(
        "/workspaces", {"name": "w", "agent_url": "http://127.0.0.1:9", "agent_token": "t"}, expect=201
    )
    return (await api.post("/chats", {"workspace_id": workspace["id"]}, expect=201))["id"]


async def _settled(api: Api, chat_id: str) -> dict:
    async def done() -> dict | None:
        chat = await api.get(f"/chats/{chat_id}")
        return chat if not chat["running"] and chat["status"] != "running" else None

    return await wait_until(done, timeout=30, message="the chat to leave 'running'")


@pytest.mark.timeout(180)
async def test_a_full_disk_is_a_507_and_the_chat_is_not_left_running(
    start_chat_server: Callable[..., ChatServer], fake_model: FakeOpenAI, tmpfs: PrivateTmpfs, tmp_path: Path
) -> None:
    server = start_on_tmpfs(start_chat_server, tmpfs, tmp_path)
    api = Api(server.url, server.admin_token)
    hold = threading.Event()
    try:
        chat_id = await _new_chat(api)
        fake_model.add(Reply(text="x" * 600_000, hold=hold))  # one word: a few deltas
        await api.post(f"/chats/{chat_id}/messages", {"content": "go"}, expect=202)
        await wait_until(lambda: fake_model.requests, timeout=30, message="the turn to reach the model")
        assert (await api.get(f"/chats/{chat_id}"))["status"] == "running"
        tmpfs.fill()
        hold.set()  # the step cannot be stored now
        chat = await _settled(api, chat_id)
        assert chat["status"] == "error"

        full = await api.http.post(f"/api/v0/chats/{chat_id}/messages", json={"content": "y" * 600_000})
        assert full.status_code == 507, full.text
        assert full.json()["message"] == "no space left for the database"

        tmpfs.free()  # once there is room again, the chat takes messages and runs turns
        fake_model.add(Reply(text="back"))
        await api.post(f"/chats/{chat_id}/messages", {"content": "again"}, expect=202)
        await api.events(chat_id, turn_ended())
        chat = await _settled(api, chat_id)
        assert chat["status"] == "idle"
        assert (await api.messages(chat_id))[-1]["parts"] == [{"type": "text", "text": "back"}]
    finally:
        hold.set()
        await api.aclose()


async def test_a_read_only_database_is_a_503(
    start_chat_server: Callable[..., ChatServer], tmp_path: Path
) -> None:
    db = tmp_path / "ro" / "workdock.db"
    server = start_chat_server(subprocess_mode=True, database_url=f"sqlite:///{db}")
    api = Api(server.url, server.admin_token)
    try:
        chat_id = await _new_chat(api)
    finally:
        await api.aclose()
    server.stop()
    # The same database, opened read-only by SQLite (root ignores file modes, so a chmod would not do).
    server = start_chat_server(subprocess_mode=True, database_url=f"sqlite:///file:{db}?mode=ro&uri=true")
    api = Api(server.url, server.admin_token)
    try:
        assert (await api.get(f"/chats/{chat_id}"))["status"] == "idle"  # reads still work
        for path, body in (
            (f"/api/v0/chats/{chat_id}/messages", {"content": "more"}),
            ("/api/v0/workspaces", {"name": "x", "agent_url": "http://127.0.0.1:9", "agent_token": "t"}),
        ):
            refused = await api.http.post(path, json=body)
            assert refused.status_code == 503, refused.text
            assert refused.json()["message"] == "the database is read-only", refused.json()
        assert (await api.get(f"/chats/{chat_id}"))["queued"] == []
    finally:
        await api.aclose()
