"""Bad input to the chat server: a clear 4xx and nothing stored, never a 500 later; sizes are
bounded; timestamps have one format."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx2
import pytest

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import FakeOpenAI, Reply
from tests.chat.test_turn_e2e import turn_ended
from workdock.chat.store.db import create_engine, sqlite_url
from workdock.chat.store.repo import Store
from workdock.secretbox import load_key

pytestmark = pytest.mark.anyio

UTC_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")


async def _post_raw(api: Api, path: str, body: bytes) -> httpx2.Response:
    return await api.http.post("/api/v0" + path, content=body, headers={"Content-Type": "application/json"})


async def test_a_non_ascii_agent_token_is_refused_and_a_stored_one_fails_only_its_workspace(
    admin_api: Api, chat_server: ChatServer
) -> None:
    answer = await admin_api.http.post(
        "/api/v0/workspaces", json={"name": "w", "agent_url": "http://127.0.0.1:9", "agent_token": "tökén"}
    )
    assert answer.status_code == 400 and "agent_token" in answer.json()["detail"]
    for token in ("two words", "tab\there", ""):
        bad = {"name": "w", "agent_url": "http://127.0.0.1:9", "agent_token": token}
        assert (await admin_api.http.post("/api/v0/workspaces", json=bad)).status_code == 400
    assert (await admin_api.get("/workspaces"))["workspaces"] == []

    # One stored before tokens were checked: it fails alone, as its own workspace's error.
    good = await admin_api.post(
        "/workspaces", {"name": "good", "agent_url": "http://127.0.0.1:9", "agent_token": "t"}, expect=201
    )
    engine = create_engine(sqlite_url(chat_server.data_dir / "workdock.db"))
    store = Store(engine, load_key(chat_server.data_dir, None).box)
    me = await admin_api.get("/me")
    old = await store.create_workspace(me["id"], "old", "http://127.0.0.1:9", "tökén")
    store.close()
    await engine.dispose()
    listed = {w["name"]: w for w in (await admin_api.get("/workspaces"))["workspaces"]}
    assert listed["old"]["agent"]["reachable"] is False and listed["old"]["agent"]["error"]
    assert listed["good"]["id"] == good["id"]
    assert (await admin_api.get(f"/workspaces/{old.id}"))["agent"]["reachable"] is False
    chat = await admin_api.post("/chats", {"workspace_id": old.id}, expect=201)
    tools = await admin_api.get(f"/chats/{chat['id']}/tools")
    assert {f["source"] for f in tools["failures"]} == {"builtin", "workspace"}


async def test_lone_surrogates_are_a_400_and_nothing_is_stored(admin_api: Api) -> None:
    workspace = await admin_api.post(
        "/workspaces", {"name": "w", "agent_url": "http://127.0.0.1:9", "agent_token": "t"}, expect=201
    )
    chat = await admin_api.post("/chats", {"workspace_id": workspace["id"]}, expect=201)
    for path, body in (
        ("/chats", b'{"workspace_id": "\\ud800"}'),
        ("/login", b'{"code": "\\ud800"}'),
        ("/mcp-servers", b'{"slug": "s", "url": "http://127.0.0.1:9/mcp", "allow_tools": ["\\ud800"]}'),
        ("/mcp-servers", b'{"slug": "s", "url": "http://127.0.0.1:9/mcp", "headers": {"a": "\\udc00"}}'),
        (f"/chats/{chat['id']}/messages", b'{"content": "hi \\ud800"}'),
        ("/users", b'{"name": "\\ud800"}'),
    ):
        answer = await _post_raw(admin_api, path, body)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["message"] == "the body is not valid JSON"
        assert "surrogate" in answer.json()["detail"]
    assert (await admin_api.get("/mcp-servers"))["servers"] == []
    assert (await admin_api.get(f"/chats/{chat['id']}"))["queued"] == []
    assert len((await admin_api.get("/chats"))["chats"]) == 1


async def test_message_and_body_sizes_are_bounded(
    start_chat_server: Callable[..., ChatServer], fake_model: FakeOpenAI
) -> None:
    server = start_chat_server(
        env={"WORKDOCK_MAX_MESSAGE_BYTES": "1000", "WORKDOCK_MAX_REQUEST_BYTES": "5000"}
    )
    api = Api(server.url, server.admin_token)
    try:
        workspace = await api.post(
            "/workspaces", {"name": "w", "agent_url": "http://127.0.0.1:9", "agent_token": "t"}, expect=201
        )
        chat = (await api.post("/chats", {"workspace_id": workspace["id"]}, expect=201))["id"]
        too_long = await api.http.post(f"/api/v0/chats/{chat}/messages", json={"content": "é" * 501})
        assert too_long.status_code == 413
        assert too_long.json()["message"] == "message too long" and "1000 bytes" in too_long.json()["detail"]
        too_big = await api.http.post(f"/api/v0/chats/{chat}/messages", json={"content": "x" * 6000})
        assert too_big.status_code == 413 and "5000 bytes" in too_big.json()["detail"]
        assert (await api.get(f"/chats/{chat}"))["queued"] == [] and await api.messages(chat) == []
        fake_model.add(Reply(text="fits"))
        await api.post(f"/chats/{chat}/messages", {"content": "é" * 500}, expect=202)
        await api.events(chat, turn_ended())
    finally:
        await api.aclose()


async def test_the_default_message_limit_is_one_mebibyte(admin_api: Api) -> None:
    workspace = await admin_api.post(
        "/workspaces", {"name": "w", "agent_url": "http://127.0.0.1:9", "agent_token": "t"}, expect=201
    )
    chat = (await admin_api.post("/chats", {"workspace_id": workspace["id"]}, expect=201))["id"]
    answer = await admin_api.http.post(
        f"/api/v0/chats/{chat}/messages", json={"content": "x" * (1024 * 1024 + 1)}
    )
    assert answer.status_code == 413 and "1048576 bytes" in answer.json()["detail"]


async def test_timestamps_have_one_format_everywhere(admin_api: Api, fake_model: FakeOpenAI) -> None:
    workspace = await admin_api.post(
        "/workspaces", {"name": "w", "agent_url": "http://127.0.0.1:9", "agent_token": "t"}, expect=201
    )
    chat = await admin_api.post("/chats", {"workspace_id": workspace["id"]}, expect=201)
    fake_model.add(Reply(text="hello"))
    await admin_api.post(f"/chats/{chat['id']}/messages", {"content": "hi"}, expect=202)
    streamed = await admin_api.events(chat["id"], turn_ended())
    me = await admin_api.get("/me")
    seen = [
        workspace["created_at"],
        chat["created_at"],
        chat["updated_at"],
        me["created_at"],
        *(w["created_at"] for w in (await admin_api.get("/workspaces"))["workspaces"]),
        *(c["created_at"] for c in (await admin_api.get("/chats"))["chats"]),
        (await admin_api.get(f"/chats/{chat['id']}"))["updated_at"],
        *(m["created_at"] for m in await admin_api.messages(chat["id"])),
        *(e["data"]["created_at"] for _, e in streamed if e["type"] == "data-message"),
        *(t["created_at"] for t in (await admin_api.get(f"/users/{me['id']}/tokens"))["tokens"]),
    ]
    assert all(UTC_OFFSET.match(stamp) for stamp in seen), seen
