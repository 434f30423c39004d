"""GET /chats a page at a time: keyset cursors over (updated_at, id), on both databases, by index."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update

from tests.chat.conftest import Api, ChatServer
from tests.chat.test_store import database_url, store  # noqa: F401
from workdock.chat.store.db import create_engine, migrate, sqlite_url
from workdock.chat.store.models import Chat, utcnow
from workdock.chat.store.repo import Store
from workdock.secretbox import SecretBox, new_key, parse_key

pytestmark = pytest.mark.anyio


async def _all_pages(api: Api, limit: int) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        page = await api.get("/chats", params=params)
        pages.append(page["chats"])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "the pages never ended"


async def test_pages_walk_every_chat_newest_first_once(admin_api: Api, chat_server: ChatServer) -> None:
    workspace = await admin_api.post(
        "/workspaces", {"name": "w", "agent_url": "http://127.0.0.1:9", "agent_token": "t"}, expect=201
    )
    made = [
        (await admin_api.post("/chats", {"workspace_id": workspace["id"], "title": f"c{i}"}, expect=201))[
            "id"
        ]
        for i in range(7)
    ]
    # A rename updates a chat: it moves to the front.
    await admin_api.request("PATCH", f"/chats/{made[2]}", json={"title": "renamed"})

    pages = await _all_pages(admin_api, 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    listed = [c["id"] for p in pages for c in p]
    assert listed[0] == made[2] and sorted(listed) == sorted(made)
    stamps = [c["updated_at"] for p in pages for c in p]
    assert stamps == sorted(stamps, reverse=True)

    default = await admin_api.get("/chats")
    assert [c["id"] for c in default["chats"]] == listed and default["next_cursor"] is None


async def test_bad_page_arguments_are_4xx_in_the_error_shape(admin_api: Api) -> None:
    for params in ({"cursor": "not a cursor!"}, {"cursor": "Zm9v"}, {"cursor": "x" * 300}):
        response = await admin_api.http.get("/api/v0/chats", params=params)
        assert response.status_code in (400, 422), response.text
        assert set(response.json()) == {"message", "detail"}
    for limit in (0, 201, -1):
        response = await admin_api.http.get("/api/v0/chats", params={"limit": limit})
        assert response.status_code in (400, 422) and set(response.json()) == {"message", "detail"}


async def test_another_users_chats_are_on_no_page(admin_api: Api, chat_server: ChatServer) -> None:
    bob = await admin_api.post("/users", {"name": "bob"}, expect=201)
    token = (await admin_api.post(f"/users/{bob['id']}/tokens", {"name": "t"}, expect=201))["token"]
    bob_api = Api(chat_server.url, token)
    try:
        workspace = await admin_api.post(
            "/workspaces", {"name": "w", "agent_url": "http://127.0.0.1:9", "agent_token": "t"}, expect=201
        )
        for _ in range(3):
            await admin_api.post("/chats", {"workspace_id": workspace["id"]}, expect=201)
        admin_page = await admin_api.get("/chats", params={"limit": 1})
        assert admin_page["next_cursor"]
        # Bob's view from the admin's cursor: still nothing of the admin's.
        assert (await bob_api.get("/chats", params={"cursor": admin_page["next_cursor"]}))["chats"] == []
        assert (await bob_api.get("/chats"))["chats"] == []
    finally:
        await bob_api.aclose()


async def test_chats_updated_at_the_same_instant_are_split_by_id(store: Store) -> None:
    user = await store.create_user("u")
    workspace = await store.create_workspace(user.id, "w", "http://127.0.0.1:9", "t")
    ids = [(await store.create_chat(user.id, workspace.id, title=None, model=None)).id for _ in range(5)]
    same = utcnow() - timedelta(minutes=1)
    async with store.sessions.begin() as s:
        await s.execute(update(Chat).values(updated_at=same))
    seen: list[str] = []
    after = None
    while True:
        page, more = await store.chat_page(user.id, 2, after)
        seen += [c.id for c in page]
        if not more:
            break
        after = (page[-1].updated_at, page[-1].id)
    assert seen == sorted(ids, reverse=True)


async def test_sqlite_answers_a_page_from_the_index(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path / "plan.db"))
    await migrate(engine, SecretBox(parse_key(new_key())))
    try:
        async with engine.connect() as conn:
            plan = (
                await conn.execute(
                    text(
                        "EXPLAIN QUERY PLAN SELECT * FROM chats WHERE user_id = 'u' AND "
                        "(updated_at, id) < ('2026-01-01', 'x') ORDER BY updated_at DESC, id DESC LIMIT 51"
                    )
                )
            ).all()
        detail = " ".join(str(row[-1]) for row in plan)
        assert "ix_chats_user_updated" in detail and "TEMP B-TREE" not in detail, detail
    finally:
        await engine.dispose()
