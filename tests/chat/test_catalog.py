"""Big catalogs over the real stack: a workspace server with hundreds of tools, the budget that
defers them behind find_tools, what find_tools finds offered from the next step, GET …/tools
states, and per-chat toggles of a source, a server and a tool applied from the next step."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.chat.conftest import Api
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.support.agent import RunningAgent, fixture_server
from tests.support.helpers import wait_until
from workdock.chat.tools.builtin import RESERVED

pytestmark = pytest.mark.anyio

WEATHER = "many__weather_forecast"


@pytest.fixture
def agent(start_agent: Callable[..., RunningAgent]) -> RunningAgent:
    agent = start_agent({"many": fixture_server("many_tools.py"), "pag": fixture_server("paginated.py")})
    agent.wait_state("many", "ready")
    agent.wait_state("pag", "ready")
    return agent


async def tools_of(api: Api, chat_id: str) -> dict[str, Any]:
    return await api.get(f"/chats/{chat_id}/tools")


def states(listing: dict[str, Any]) -> dict[str, str]:
    return {t["name"]: t["state"] for t in listing["tools"]}


async def patch(api: Api, chat_id: str, **fields: Any) -> dict[str, Any]:
    return await api.request("PATCH", f"/chats/{chat_id}", json=fields)


async def test_the_budget_defers_a_big_catalog_and_a_chat_can_lift_it(
    admin_api: Api, fake_model: FakeOpenAI, agent: RunningAgent
) -> None:
    chat_id = await new_chat(admin_api, agent.url)
    listing = await tools_of(admin_api, chat_id)
    seen = states(listing)
    assert listing["catalog"]["deferred"] is True
    assert listing["catalog"]["max_tools"] == 40 and listing["catalog"]["max_tokens"] == 20_000
    assert seen["find_tools"] == "loaded"
    assert {n for n, s in seen.items() if s == "loaded"} == {*RESERVED, "find_tools"}
    deferred = [n for n, s in seen.items() if s == "deferred"]
    assert len(deferred) > 300 and WEATHER in deferred and "pag__tool_01" in deferred
    assert listing["catalog"]["sent_tokens"] < listing["catalog"]["schema_tokens"] / 5

    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "hello"}, expect=202)
    await admin_api.events(chat_id, turn_ended())
    assert set(fake_model.tool_names(-1)) == {*RESERVED, "find_tools"}

    # The chat's own budget: no limit offers everything; the server's again defers.
    chat = await patch(admin_api, chat_id, tool_budget={"max_tools": 0, "max_tokens": 0})
    assert chat["tool_budget"] == {"max_tools": 0, "max_tokens": 0}
    listing = await tools_of(admin_api, chat_id)
    assert listing["catalog"]["deferred"] is False
    assert set(states(listing).values()) == {"loaded"} and "find_tools" not in states(listing)
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "again"}, expect=202)
    await admin_api.events(chat_id, turn_ended())
    assert len(fake_model.tool_names(-1)) == len(listing["tools"]) > 300
    assert "find_tools" not in fake_model.tool_names(-1)

    # A budget in tokens alone switches it too.
    await patch(admin_api, chat_id, tool_budget={"max_tools": 0, "max_tokens": 500})
    assert (await tools_of(admin_api, chat_id))["catalog"]["deferred"] is True
    assert (await patch(admin_api, chat_id, tool_budget=None))["tool_budget"] is None
    assert (await tools_of(admin_api, chat_id))["catalog"]["max_tools"] == 40

    for bad in ({"max_tools": -1}, {"max_tools": "many"}, {"other": 1}):
        answer = await admin_api.request("PATCH", f"/chats/{chat_id}", 400, json={"tool_budget": bad})
        assert set(answer) == {"message", "detail"}


async def test_find_tools_results_are_offered_from_the_next_step_and_stay_recent(
    admin_api: Api, fake_model: FakeOpenAI, agent: RunningAgent
) -> None:
    chat_id = await new_chat(admin_api, agent.url)
    found: list[dict[str, Any]] = []

    def call_what_was_found(body: dict[str, Any]) -> Reply:
        [result] = [m for m in body["messages"] if m["role"] == "tool"]
        found.extend(json.loads(result["content"])["tools"])
        return Reply(calls=[Call(found[0]["name"], {"city": "Oslo", "days": 2})])

    fake_model.add(
        Reply(calls=[Call("find_tools", {"query": "weather forecast for a city"})]),
        call_what_was_found,
        Reply(text="Sunny in Oslo."),
    )
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "weather in Oslo?"}, expect=202)
    await admin_api.events(chat_id, turn_ended())
    assert found[0]["name"] == WEATHER and found[0]["arguments"] == ["city", "days"]
    assert len(found) <= 5
    # Not offered before the search; offered at the next step and the one after.
    assert WEATHER not in fake_model.tool_names(0)
    assert WEATHER in fake_model.tool_names(1) and WEATHER in fake_model.tool_names(2)
    [result] = [m for m in await admin_api.messages(chat_id) if m["role"] == "tool"][-1:]
    assert result["parts"][0]["content"][0]["text"] == (
        'weather_forecast called with {"city": "Oslo", "days": 2}'
    )

    # The next turn: what was used and found counts as recent, loaded from the first step.
    assert states(await tools_of(admin_api, chat_id))[WEATHER] == "loaded"
    fake_model.add(Reply(text="Still sunny."))
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "and tomorrow?"}, expect=202)
    await admin_api.events(chat_id, turn_ended())
    assert WEATHER in fake_model.tool_names(-1)

    # Bad arguments are an error result, not a failed turn.
    fake_model.add(Reply(calls=[Call("find_tools", {"query": ""})]), Reply(text="ok"))
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "search nothing"}, expect=202)
    await admin_api.events(chat_id, turn_ended())
    error = [m for m in await admin_api.messages(chat_id) if m["role"] == "tool"][-1]["parts"][0]
    assert error["is_error"] and "needs a `query`" in error["content"][0]["text"]


async def test_toggles_of_a_tool_a_server_and_a_source_apply_from_the_next_step(
    admin_api: Api, fake_model: FakeOpenAI, agent: RunningAgent
) -> None:
    chat_id = await new_chat(admin_api, agent.url)
    await patch(admin_api, chat_id, tool_budget={"max_tools": 0, "max_tokens": 0})
    holds = [threading.Event() for _ in range(3)]
    fake_model.add(
        Reply(calls=[Call("process_list", {})], hold=holds[0]),
        Reply(calls=[Call(WEATHER, {"city": "Oslo"})], hold=holds[1]),
        Reply(calls=[Call("pag__tool_01", {})], hold=holds[2]),
        Reply(text="done"),
    )
    toggles = [
        {"tools": [WEATHER]},
        {"tools": [WEATHER], "servers": [{"source": "workspace", "server": "pag"}]},
        {"tools": [WEATHER], "servers": [{"source": "workspace", "server": "pag"}], "sources": ["builtin"]},
    ]
    try:
        await admin_api.post(f"/chats/{chat_id}/messages", {"content": "go"}, expect=202)
        for index, (hold, toggle) in enumerate(zip(holds, toggles, strict=True)):
            await wait_until(lambda n=index: len(fake_model.requests) == n + 1, timeout=30, message="a step")
            # Changed while the step runs: the step keeps its tools, the next one gets the change.
            chat = await patch(admin_api, chat_id, disabled_tools=toggle)
            assert chat["disabled_tools"] == {"sources": [], "servers": [], "tools": [], **toggle}
            hold.set()
    finally:
        for hold in holds:
            hold.set()
    await admin_api.wait_status(chat_id, "idle")
    sent = [set(fake_model.tool_names(i)) for i in range(4)]
    assert WEATHER in sent[0] and WEATHER not in sent[1]
    assert "pag__tool_01" in sent[1] and not any(n.startswith("pag__") for n in sent[2])
    assert "read_file" in sent[2] and not sent[3] & RESERVED
    assert "many__tracker_list_item" in sent[3]
    results = [m["parts"][0] for m in await admin_api.messages(chat_id) if m["role"] == "tool"]
    # A call of a tool turned off during its own step is refused with the reason.
    assert results[1]["is_error"] and "turned off for this chat" in results[1]["content"][0]["text"]
    assert results[2]["is_error"] and "turned off" in results[2]["content"][0]["text"]

    listing = states(await tools_of(admin_api, chat_id))
    assert listing[WEATHER] == listing["pag__tool_01"] == listing["read_file"] == "disabled"
    assert listing["many__tracker_list_item"] == "loaded"
    chat = await patch(admin_api, chat_id, disabled_tools=None)
    assert chat["disabled_tools"] == {"sources": [], "servers": [], "tools": []}
    assert set(states(await tools_of(admin_api, chat_id)).values()) == {"loaded"}
    bad = await admin_api.request(
        "PATCH", f"/chats/{chat_id}", 400, json={"disabled_tools": {"sources": ["nowhere"]}}
    )
    assert set(bad) == {"message", "detail"}
