"""What one replica changes, every replica follows: admin MCP servers (each replica keeps its own
connections), deleted tokens (no replica serves one from its cache), and all of it again after the
notification connections to PostgreSQL were cut."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest

from tests.chat.conftest import Api
from tests.chat.fake_openai import FakeOpenAI, Reply
from tests.chat.test_turn_e2e import turn_ended
from tests.replicas.conftest import Service, new_chat, new_workspace
from tests.support.agent import RunningAgent
from tests.support.helpers import wait_until
from workdock.chat.notify import APPLICATION_NAME

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def offered(api: Api, chat_id: str) -> set[str]:
    tools = await api.get(f"/chats/{chat_id}/tools")
    return {t["name"] for t in tools["tools"] if t["source"] == "admin"}


async def wait_offered(api: Api, chat_id: str, wanted: bool, timeout: float = 10) -> None:
    async def check() -> bool:
        return ("shared__echo" in await offered(api, chat_id)) is wanted

    await wait_until(check, timeout=timeout, interval=0.05, message=f"shared__echo offered={wanted}")


@pytest.mark.timeout(240)
async def test_an_admin_server_changed_through_one_replica_is_applied_by_all(
    start_service: Callable[..., Service],
    start_agent: Callable[..., RunningAgent],
    everything_http_url: str,
) -> None:
    service = start_service(3)
    a, b, c = service.apis
    agent = start_agent({})
    chat_id = await new_chat(a, await new_workspace(a, agent.url))
    assert await offered(c, chat_id) == set()

    created = await a.post("/mcp-servers", {"slug": "shared", "url": everything_http_url}, expect=201)
    # The notification, not a poll: nothing else makes C connect to the server.
    await wait_offered(c, chat_id, True)
    await wait_offered(b, chat_id, True)
    await b.request("PATCH", f"/mcp-servers/{created['id']}", json={"enabled": False})
    await wait_offered(a, chat_id, False)
    await wait_offered(c, chat_id, False)
    await c.request("PATCH", f"/mcp-servers/{created['id']}", json={"enabled": True})
    await wait_offered(a, chat_id, True)
    await b.delete(f"/mcp-servers/{created['id']}")
    await wait_offered(c, chat_id, False)
    await wait_offered(a, chat_id, False)


async def test_a_token_deleted_through_one_replica_is_refused_by_the_others_at_once(
    start_service: Callable[..., Service],
) -> None:
    service = start_service(2)
    a = service.apis[0]
    me = await a.get("/me")
    made = await a.post(f"/users/{me['id']}/tokens", {"name": "short-lived"}, expect=201)
    other = Api(service.replicas[1].url, made["token"])
    try:
        assert (await other.get("/me"))["id"] == me["id"]  # B has it cached now (10 s)
        await a.delete(f"/tokens/{made['id']}")

        async def refused() -> bool:
            return (await other.http.get("/api/v0/me")).status_code == 401

        # Well inside the cache's 10 s: B dropped it when A said so.
        await wait_until(refused, timeout=5, message="B to refuse the deleted token")
    finally:
        await other.aclose()


async def _cut_notifications(service: Service) -> int:
    rows = await service.fetch(
        "SELECT pg_terminate_backend(pid) AS cut FROM pg_stat_activity WHERE application_name = $1",
        APPLICATION_NAME,
    )
    return sum(1 for row in rows if row["cut"])


@pytest.mark.timeout(240)
async def test_replicas_reconnect_their_notifications_and_go_on(
    start_service: Callable[..., Service],
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
) -> None:
    service = start_service(3)
    a, b, c = service.apis
    agent = start_agent({})
    chat_id = await new_chat(a, await new_workspace(a, agent.url))
    assert await _cut_notifications(service) == 3

    async def listening_again() -> bool:
        rows = await service.fetch(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1", APPLICATION_NAME
        )
        return rows[0]["n"] == 3

    await wait_until(listening_again, timeout=30, message="the three notification connections to be back")
    fake_model.add(Reply(text="still one service"))
    seen: list[Any] = []
    subscribed: list[bool] = []
    ended = turn_ended()

    async def watch() -> None:
        def until(event: dict[str, Any]) -> bool:
            subscribed.append(True)  # the first event (the idle snapshot) means it is subscribed
            return ended(event)

        seen.extend(await c.events(chat_id, until))

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        await wait_until(lambda: subscribed, message="the watcher to subscribe")
        await b.post(f"/chats/{chat_id}/messages", {"content": "after the cut"}, expect=202)
    deltas = "".join(e["delta"] for _, e in seen if e["type"] == "text-delta")
    assert deltas == "still one service"
    assert len(fake_model.requests) == 1
