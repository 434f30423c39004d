"""A lease renewal that lands while a chat is being given back: the chat is not ours in the
database any more, rightly, so nothing is "lost" and the owner is left to finish its give-back."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import FakeOpenAI, Reply
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.support.agent import RunningAgent
from tests.support.helpers import wait_until
from workdock.chat.services import Services

pytestmark = pytest.mark.anyio


async def test_a_renewal_during_the_give_back_stops_nothing(
    chat_server: ChatServer,
    admin_api: Api,
    fake_model: FakeOpenAI,
    start_agent: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent: RunningAgent = start_agent({})
    renewals: list[float] = []

    async def renew_right_after_each_release(svc: Services) -> None:
        scheduler, leases = svc.scheduler, svc.scheduler.leases
        release = leases.release

        async def release_then_renew(chat_id: str, owner: str, last_seq: int | None) -> bool:
            released = await release(chat_id, owner, last_seq)
            # The replica's renewer runs now, between the release and the owner's own next step.
            renewals.append(await scheduler.renew(time.monotonic()))
            return released

        leases.release = release_then_renew  # type: ignore[method-assign]

    await chat_server.call(renew_right_after_each_release)
    chat_id = await new_chat(admin_api, agent.url)
    caplog.set_level(logging.WARNING, logger="workdock.chat.scheduler")
    for given_back, word in enumerate(("one", "two"), start=1):
        fake_model.add(Reply(text=word))
        await admin_api.post(f"/chats/{chat_id}/messages", {"content": word}, expect=202)
        await admin_api.events(chat_id, turn_ended())
        await wait_until(
            lambda n=given_back: len(renewals) >= n, timeout=30, message="the chat to be given back"
        )
    lost = [r.getMessage() for r in caplog.records if "lease was lost" in r.getMessage()]
    assert lost == []
    texts = [m["parts"] for m in await admin_api.messages(chat_id) if m["role"] == "assistant"]
    assert texts == [[{"type": "text", "text": "one"}], [{"type": "text", "text": "two"}]]
