"""Two replicas on one PostgreSQL: a tool's request for input, answered through the replica that
does not run the turn, reaches the call on the one that does (the answer is sent on with the
service secret, and the holder's verdict comes back as it is)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_tool_streaming import _pending, _result_text
from tests.replicas.conftest import Service, new_chat, new_workspace
from tests.support.agent import RunningAgent, fixture_server

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def test_an_answer_through_a_replica_that_does_not_run_the_turn_reaches_the_call(
    start_service: Callable[..., Service], fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent]
) -> None:
    service = start_service(2)
    agent = start_agent({"asks": fixture_server("asks_user.py")})
    agent.wait_state("asks", "ready")
    chat_id = await new_chat(service.apis[0], await new_workspace(service.apis[0], agent.url))
    fake_model.add(Reply(calls=[Call("asks__ask", {"question": "Your name?"}, id="c-ask")]), Reply(text="ok"))
    await service.apis[0].post(f"/chats/{chat_id}/messages", {"content": "ask me"}, expect=202)

    holder = service.api_at(await service.wait_holder(chat_id))
    other = next(api for api in service.apis if api is not holder)
    _, pending = (await other.events(chat_id, _pending, timeout=60))[-1]
    path = f"/chats/{chat_id}/elicitations/{pending['data']['elicitationId']}"

    # The holder's checks answer through the other replica too: the schema, an unknown request.
    bad = await other.post(path, {"action": "accept", "content": {"count": "two"}}, expect=400)
    assert set(bad) == {"message", "detail"}
    await other.post(f"/chats/{chat_id}/elicitations/nope", {"action": "decline"}, expect=404)
    # Only a replica of the service may send answers on.
    forged = await other.http.post(
        f"/internal/v0/elicitations/{chat_id}/{pending['data']['elicitationId']}",
        json={"action": "accept", "content": {"answer": "Mallory"}},
    )
    assert forged.status_code == 401 and set(forged.json()) == {"message", "detail"}

    answered = await other.post(path, {"action": "accept", "content": {"answer": "Ada", "sure": True}})
    assert answered == {"id": pending["data"]["elicitationId"], "action": "accept"}
    await other.wait_status(chat_id, "idle", timeout=60)
    messages: list[dict[str, Any]] = await other.messages(chat_id)
    assert _result_text(messages, "asks__ask") == "accepted: Ada x1 sure=True"
    assert len(fake_model.requests) == 2
