"""Two replicas on one PostgreSQL: an approval posted to the replica that does not run the turn
reaches the one that does (the answer is stored, a notification wakes the holder), and the
waiting turn keeps its lease, renewed, the whole time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import turn_ended
from tests.replicas.conftest import Service, new_workspace
from tests.support.agent import RunningAgent
from tests.support.helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def test_an_approval_through_a_replica_that_does_not_run_the_turn_lets_the_call_run(
    start_service: Callable[..., Service], fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent]
) -> None:
    service = start_service(2)
    first = service.apis[0]
    agent = start_agent({})
    workspace_id = await new_workspace(first, agent.url)
    chat = await first.post("/chats", {"workspace_id": workspace_id, "approval_policy": "ask"}, expect=201)
    chat_id = str(chat["id"])
    fake_model.add(
        Reply(calls=[Call("write_file", {"path": "approved.txt", "content": "yes"})]), Reply(text="written")
    )
    await first.post(f"/chats/{chat_id}/messages", {"content": "write it"}, expect=202)

    found: list[dict[str, Any]] = []

    async def waiting() -> bool:
        nonlocal found
        found = (await first.get(f"/chats/{chat_id}"))["pending_approvals"]
        return len(found) == 1

    await wait_until(waiting, timeout=60, message="the call to wait for approval")
    call_id = found[0]["tool_call_id"]
    holder = await service.wait_holder(chat_id)

    # While it waits, the holder keeps renewing the chat's lease.
    async def expiry() -> datetime:
        rows = await service.fetch("SELECT lease_expires_at FROM chats WHERE id = $1", chat_id)
        value: datetime = rows[0]["lease_expires_at"]
        return value

    before = await expiry()

    async def renewed() -> bool:
        return await expiry() > before

    await wait_until(renewed, timeout=60, message="the waiting turn's lease to be renewed")
    assert await service.holder(chat_id) == holder
    assert (await first.get(f"/chats/{chat_id}"))["status"] == "running"

    other = next(api for api in service.apis if not api.base_url.endswith(holder))
    seen: list[list[tuple[str, dict[str, Any]]]] = []
    async with anyio.create_task_group() as tg:

        async def watch() -> None:  # on the replica that answers, not the one that runs the turn
            seen.append(await other.events(chat_id, turn_ended(), timeout=90))

        tg.start_soon(watch)
        answered = await other.post(f"/chats/{chat_id}/approvals/{call_id}", {"approve": True})
        assert answered["answered"] == [call_id]
    await other.wait_status(chat_id, "idle", timeout=60)

    chunks = [e for _, e in seen[0]]
    assert {"type": "tool-approval-response", "approvalId": call_id, "approved": True} in chunks
    [result] = fake_model.tool_messages(1)
    assert result["tool_call_id"] == call_id
    assert "denied" not in str(result["content"])
    messages = await other.messages(chat_id)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[2]["parts"][0]["is_error"] is False
    assert messages[-1]["parts"][0]["text"] == "written"
    assert len(fake_model.requests) == 2


async def test_an_interrupt_while_no_replica_holds_a_waiting_turn_stops_it_when_taken_up(
    start_service: Callable[..., Service],
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    workspace_dir: Path,
) -> None:
    # Replica 1 answers the API and runs no turns; short leases so the dead holder's lapses soon.
    def env_for(index: int) -> dict[str, str]:
        return {"WORKDOCK_LEASE_SECONDS": "3", **({"WORKDOCK_MAX_TURNS": "0"} if index == 1 else {})}

    service = start_service(2, env_for)
    api = service.apis[1]
    agent = start_agent({})
    workspace_id = await new_workspace(api, agent.url)
    chat = await api.post("/chats", {"workspace_id": workspace_id, "approval_policy": "ask"}, expect=201)
    chat_id = str(chat["id"])
    fake_model.add(Reply(calls=[Call("write_file", {"path": "never.txt", "content": "x"})]))
    await api.post(f"/chats/{chat_id}/messages", {"content": "write it"}, expect=202)

    async def waiting() -> bool:
        return len((await api.get(f"/chats/{chat_id}"))["pending_approvals"]) == 1

    await wait_until(waiting, timeout=60, message="the call to wait for approval")
    service.replicas[0].kill()  # the holder dies: its waiting turn stays stored, running
    assert await api.post(f"/chats/{chat_id}/interrupt") == {"interrupted": True}
    assert (await api.get(f"/chats/{chat_id}"))["status"] == "running"  # nobody ran it yet

    start_service(1, lambda _: env_for(0))  # a replica that runs turns takes the chat up
    await api.wait_status(chat_id, "interrupted", timeout=60)
    messages = await api.messages(chat_id)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[2]["parts"][0]["not_run"] is True
    assert messages[3]["parts"][0]["type"] == "interrupted"
    assert not (workspace_dir / "never.txt").exists()
    assert len(fake_model.requests) == 1
