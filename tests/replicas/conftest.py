"""Replica test harness: N real `workdock server` processes on one real PostgreSQL database, the
scripted fake model they all call (so it counts every model request the service makes), a direct
view of the database for what the API does not show (which replica holds a chat), and helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

# The chat harness's fixtures, shared rather than copied (pytest finds fixtures imported here).
from tests.chat.conftest import (  # noqa: F401
    Api,
    ChatServer,
    fake_model,
    model_env,
    postgres_server,
    postgres_url,
    start_agent,
)
from tests.chat.fake_openai import FakeOpenAI
from tests.link.conftest import start_linked_agent  # noqa: F401
from tests.support.agent import fixture_server
from tests.support.helpers import wait_until
from workdock.chat.notify import asyncpg_dsn
from workdock.chat.store.db import normalize_url
from workdock.secretbox import new_key

pytestmark = pytest.mark.postgres


@dataclass
class Service:
    """The replicas of one service, an API client on each (as the admin), and its database."""

    replicas: list[ChatServer]
    apis: list[Api]
    database_url: str

    def api_at(self, address: str) -> Api:
        for server, api in zip(self.replicas, self.apis, strict=True):
            if server.url.endswith(f"//{address}"):
                return api
        raise AssertionError(f"no replica at {address}")

    def index_at(self, address: str) -> int:
        return next(i for i, s in enumerate(self.replicas) if s.url.endswith(f"//{address}"))

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(asyncpg_dsn(normalize_url(self.database_url)))
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()

    async def holder(self, chat_id: str) -> str | None:
        """The address of the replica that holds the chat's lease (None: nobody does)."""
        rows = await self.fetch(
            "SELECT r.address FROM chats c JOIN replicas r ON r.id = c.lease_owner "
            "WHERE c.id = $1 AND c.lease_expires_at > now()",
            chat_id,
        )
        return rows[0]["address"] if rows else None

    async def wait_holder(self, chat_id: str, timeout: float = 30) -> str:
        async def held() -> str | None:
            return await self.holder(chat_id)

        address: str = await wait_until(held, timeout=timeout, message=f"a replica to hold chat {chat_id}")
        return address


@pytest.fixture
async def start_service(
    tmp_path: Path, fake_model: FakeOpenAI, postgres_url: str
) -> AsyncIterator[Callable[..., Service]]:
    """Start N replicas on one database, one after the other (each with its own data dir and port,
    the same secret key); stopped at the end. ``env_for(i)`` adds environment for replica ``i``."""
    started: list[ChatServer] = []
    apis: list[Api] = []
    key = new_key()

    def start(count: int = 3, env_for: Callable[[int], dict[str, str]] | None = None) -> Service:
        for index in range(count):
            env = {**model_env(fake_model), "WORKDOCK_SECRET_KEY": key, **(env_for(index) if env_for else {})}
            number = len(started)  # replicas started by a later call get dirs of their own
            server = ChatServer(
                tmp_path / f"replica-{number}",
                env,
                database_url=postgres_url,
                subprocess_mode=True,
                log_path=tmp_path / f"replica-{number}.log",
            )
            started.append(server)  # stopped at the end even when it never came up
            server.start()
        token = started[0].admin_token  # the first replica made the admin
        apis.extend(Api(server.url, token) for server in started[-count:])
        return Service(started[-count:], apis[-count:], postgres_url)

    yield start
    for api in apis:
        await api.aclose()
    for server in reversed(started):
        server.stop()


@pytest.fixture
def slow_servers(tmp_path: Path) -> dict[str, Any]:
    """A .mcp.json with the slow_tool fixture: its calls and cancellations are logged to files."""
    return {
        "slow": fixture_server(
            "slow_tool.py",
            CANCEL_LOG=str(tmp_path / "cancelled.jsonl"),
            CALL_LOG=str(tmp_path / "calls.jsonl"),
        )
    }


def logged(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def new_workspace(api: Api, agent_url: str) -> str:
    from tests.support.agent import TOKEN

    workspace = await api.post(
        "/workspaces", {"name": "ws", "agent_url": agent_url, "agent_token": TOKEN}, expect=201
    )
    return str(workspace["id"])


async def new_chat(api: Api, workspace_id: str) -> str:
    return str((await api.post("/chats", {"workspace_id": workspace_id}, expect=201))["id"])
