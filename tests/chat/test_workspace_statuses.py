"""GET /workspaces gathers the agents' statuses at once and shows a recent one, with its age, for
an agent that does not answer in time: one hung agent never holds up the list."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.chat.conftest import Api, ChatServer
from tests.conftest import wait_until
from tests.support.agent import TOKEN, RunningAgent
from tests.support.http_stub import Answer, Recorded, StubServer
from workdock.chat.status_cache import FRESH_S, StatusCache

pytestmark = pytest.mark.anyio


@pytest.fixture
def hung_agent(http_stub: Callable[[Callable[[Recorded], Answer]], StubServer]) -> Iterator[StubServer]:
    """An "agent" that takes every request and never answers (until the test ends)."""
    release = threading.Event()

    def never(_: Recorded) -> Answer:
        release.wait(60)
        return Answer(503)

    yield http_stub(never)
    release.set()


async def _listed(api: Api) -> dict[str, dict[str, Any]]:
    return {w["name"]: w["agent"] for w in (await api.get("/workspaces"))["workspaces"]}


async def test_a_hung_agent_is_shown_as_last_seen_while_it_is_checked_again(
    admin_api: Api,
    chat_server: ChatServer,
    hung_agent: StubServer,
    start_agent: Callable[..., RunningAgent],
) -> None:
    agent = start_agent({})
    for name, url in (("hung", hung_agent.url), ("live", agent.url)):
        await admin_api.post(
            "/workspaces", {"name": name, "agent_url": url, "agent_token": TOKEN}, expect=201
        )

    # Never seen yet: the list waits for both checks (the hung one to its budget).
    first = await _listed(admin_api)
    assert first["live"]["reachable"] is True  # (its age: the time the list waited for the hung one)
    assert first["hung"]["reachable"] is False and "no answer in time" in first["hung"]["error"]
    hung_seen = first["hung"]["checked_at"]
    assert len(hung_agent.requests) == 1

    # Once the status is stale, the next list starts a new check but does not wait for it: the
    # hung agent is shown as last seen, with its age; the live one answers in time, fresh.
    await wait_until(
        lambda: time.time() - datetime.fromisoformat(hung_seen).timestamp() > FRESH_S,
        timeout=FRESH_S + 5,
        message="the hung agent's status to grow stale",
    )
    later = await _listed(admin_api)
    assert later["hung"]["checked_at"] == hung_seen and later["hung"]["age_s"] >= FRESH_S
    assert later["hung"]["error"] == first["hung"]["error"]
    assert later["live"]["reachable"] is True
    await wait_until(lambda: len(hung_agent.requests) == 2, message="a second check of the hung agent")

    # Asked by itself, a workspace's status is as of now.
    live_id = next(w["id"] for w in (await admin_api.get("/workspaces"))["workspaces"] if w["name"] == "live")
    alone = (await admin_api.get(f"/workspaces/{live_id}"))["agent"]
    assert alone["reachable"] is True and alone["age_s"] < FRESH_S


async def test_a_recent_status_is_served_without_asking_the_agent_again(
    admin_api: Api, chat_server: ChatServer, hung_agent: StubServer
) -> None:
    await admin_api.post(
        "/workspaces", {"name": "hung", "agent_url": hung_agent.url, "agent_token": TOKEN}, expect=201
    )
    first = await _listed(admin_api)
    checked = datetime.fromisoformat(first["hung"]["checked_at"]).timestamp()
    again = await _listed(admin_api)
    if time.time() - checked < FRESH_S:  # still fresh when the second list was answered
        assert again["hung"]["checked_at"] == first["hung"]["checked_at"]
        assert len(hung_agent.requests) == 1


async def test_the_cache_serves_fresh_ones_waits_for_unseen_ones_and_shows_stale_ones_while_checking() -> (
    None
):
    cache = StatusCache(fresh_s=3600, wait_s=0.05, max_entries=2)
    asked: list[str] = []
    gate = asyncio.Event()

    def probe(key: str, hold: bool = False) -> Callable[[], Awaitable[dict[str, Any]]]:
        async def run() -> dict[str, Any]:
            asked.append(key)
            if hold:
                await gate.wait()
            return {"key": key, "n": asked.count(key)}

        return run

    # Never seen: waited for, however long the check takes.
    slow_first = asyncio.ensure_future(cache.many([("a", probe("a", hold=True)), ("b", probe("b"))]))
    await wait_until(lambda: asked == ["a", "b"], message="both checks to start")
    assert not slow_first.done()
    gate.set()
    first = await slow_first
    assert [s.status["n"] for s in first if s] == [1, 1]
    gate.clear()

    # Fresh: served without asking.
    again = await cache.many([("a", probe("a")), ("b", probe("b"))])
    assert asked == ["a", "b"] and again == first

    # Stale: asked again; one that does not answer in the wait is shown as last seen.
    cache.fresh_s = 0
    stale = await cache.many([("a", probe("a", hold=True)), ("b", probe("b"))])
    assert stale[0] == first[0] and stale[1] is not None and stale[1].status["n"] == 2
    gate.set()
    await wait_until(lambda: (cache.last("a") or first[0]).status["n"] == 2, message="a's check to land")

    # Forgotten: the next status is taken anew; and at most max_entries are kept.
    cache.forget("b")
    assert (await cache.fresh("b", probe("b"))) is not None and asked.count("b") == 3
    await cache.many([("c", probe("c"))])
    assert len(cache) == 2 and cache.last("a") is None  # the oldest went
    await cache.aclose()
