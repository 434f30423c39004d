"""A one-time login code opens exactly one session, however many requests race for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx2
import pytest

from tests.chat.conftest import Api, ChatServer

pytestmark = pytest.mark.anyio

RACERS = 20


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def racing_server(request: pytest.FixtureRequest, start_chat_server: Callable[..., ChatServer]) -> ChatServer:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    # The failed-attempt limit would answer some losers 429; here every loser must be a plain 401.
    return start_chat_server(database_url=database_url, env={"WORKDOCK_AUTH_FAILURE_LIMIT": "0"})


async def test_concurrent_redemptions_of_one_code_have_exactly_one_winner(racing_server: ChatServer) -> None:
    api = Api(racing_server.url, racing_server.admin_token)
    try:
        me = await api.get("/me")
        for _ in range(3):  # a few rounds: a race that is lost only sometimes still shows
            url = (await api.post(f"/users/{me['id']}/login-url"))["login_url"]
            code = url.split("code=", 1)[1]
            clients = [httpx2.AsyncClient(base_url=racing_server.url, timeout=30) for _ in range(RACERS)]
            try:
                answers = await asyncio.gather(
                    *(c.post("/api/v0/login", json={"code": code}) for c in clients)
                )
            finally:
                await asyncio.gather(*(c.aclose() for c in clients))
            statuses = sorted(a.status_code for a in answers)
            assert statuses == [200] + [401] * (RACERS - 1), statuses
            [winner] = [a for a in answers if a.status_code == 200]
            assert "workdock_session=" in winner.headers["set-cookie"]
            assert all(set(a.json()) == {"message", "detail"} for a in answers if a.status_code == 401)
    finally:
        await api.aclose()
