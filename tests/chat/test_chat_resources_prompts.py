"""Resources and prompts in the chat: attach a resource, run a prompt, the model's read_resource."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.chat.conftest import Api
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.support.agent import RunningAgent, fixture_server
from tests.support.everything import start_everything
from tests.support.helpers import wait_until

pytestmark = pytest.mark.anyio


def user_texts(fake: FakeOpenAI, index: int) -> list[str]:
    """The text of every user message of the model's request ``index`` (content strings or parts)."""
    texts = []
    for message in fake.requests[index]["messages"]:
        if message.get("role") != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            texts.append(content)
        else:
            texts.append("\n".join(p.get("text", "") for p in content if p.get("type") == "text"))
    return texts


@pytest.fixture
def agent(start_agent: Callable[..., RunningAgent]) -> RunningAgent:
    agent = start_agent({"fx": fixture_server("offerings.py")})
    agent.wait_state("fx", "ready")
    return agent


async def test_listings_for_the_composer(admin_api: Api, agent: RunningAgent) -> None:
    chat_id = await new_chat(admin_api, agent.url)
    resources = await admin_api.get(f"/chats/{chat_id}/resources")
    assert resources["failures"] == []
    assert {r["uri"] for r in resources["resources"]} >= {"fixture://doc/1", "fixture://blob"}
    assert all(r["source"] == "workspace" and r["server_name"] == "fx" for r in resources["resources"])
    assert resources["resource_templates"][0]["uri_template"] == "fixture://note/{name}"
    prompts = (await admin_api.get(f"/chats/{chat_id}/prompts"))["prompts"]
    greet = next(p for p in prompts if p["name"] == "fx__greet")
    assert greet["arguments"][0] == {"name": "name", "description": "who to greet", "required": True}
    assert (await admin_api.get("/chats/nope/resources", expect=404))["message"]


async def test_an_attached_resource_is_stored_and_reaches_the_model(
    admin_api: Api, fake_model: FakeOpenAI, agent: RunningAgent
) -> None:
    chat_id = await new_chat(admin_api, agent.url)
    fake_model.add(Reply(text="I read it."))
    body = {"content": "summarise this", "attachments": [{"uri": "fixture://doc/4", "server": "fx"}]}
    await admin_api.post(f"/chats/{chat_id}/messages", body, expect=202)
    await admin_api.events(chat_id, turn_ended())
    sent = user_texts(fake_model, 0)[-1]
    assert "summarise this" in sent and "fixture://doc/4" in sent and "document 4" in sent
    user = next(m for m in await admin_api.messages(chat_id) if m["role"] == "user")
    assert user["parts"][0] == {"type": "text", "text": "summarise this"}
    assert user["parts"][1] == {
        "type": "resource",
        "source": "workspace",
        "server": "fx",
        "uri": "fixture://doc/4",
        "content": [{"type": "text", "text": "document 4"}],
    }
    # the history keeps it: the next turn's request still carries the attachment
    fake_model.add(Reply(text="again"))
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "and now?"}, expect=202)
    await admin_api.events(chat_id, turn_ended())
    assert any("document 4" in t for t in user_texts(fake_model, 1))


async def test_attachment_errors_are_4xx_or_502_and_queue_nothing(
    admin_api: Api, agent: RunningAgent
) -> None:
    chat_id = await new_chat(admin_api, agent.url)
    missing = await admin_api.post(
        f"/chats/{chat_id}/messages",
        {"content": "x", "attachments": [{"uri": "fixture://doc/99", "server": "fx"}]},
        expect=404,
    )
    assert "fixture://doc/99" in missing["message"]
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": ""}, expect=400)
    await admin_api.post(
        f"/chats/{chat_id}/messages", {"content": "x", "attachments": [{"uri": ""}]}, expect=400
    )
    many = [{"uri": "fixture://doc/1"}] * 11
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "x", "attachments": many}, expect=400)
    await admin_api.post(
        f"/chats/{chat_id}/messages",
        {"content": "x", "attachments": [{"uri": "u", "source": "admin"}]},
        expect=404,
    )
    assert await admin_api.messages(chat_id) == []


async def test_a_prompt_becomes_the_users_message(
    admin_api: Api, fake_model: FakeOpenAI, agent: RunningAgent
) -> None:
    chat_id = await new_chat(admin_api, agent.url)
    fake_model.add(Reply(text="Hello to you."))
    run = {"name": "fx__greet", "arguments": {"name": "Grace"}}
    await admin_api.post(f"/chats/{chat_id}/prompt", run, expect=202)
    await admin_api.events(chat_id, turn_ended())
    assert user_texts(fake_model, 0)[-1] == "Hello, Grace!"
    user = next(m for m in await admin_api.messages(chat_id) if m["role"] == "user")
    assert user["parts"][0]["type"] == "prompt" and user["parts"][0]["name"] == "fx__greet"
    assert (await admin_api.get(f"/chats/{chat_id}"))["title"] == "Hello, Grace!"
    # a prompt that embeds a resource: the resource reaches the model too
    fake_model.add(Reply(text="Reviewed."))
    await admin_api.post(
        f"/chats/{chat_id}/prompt", {"name": "fx__review_code", "arguments": {"lang": "go"}}, expect=202
    )
    await admin_api.events(chat_id, turn_ended())
    sent = user_texts(fake_model, 1)[-1]
    assert "Review this go code." in sent and "document 1" in sent
    # errors: unknown prompt 404, the server's refusal (missing argument) 502, bad body 400
    await admin_api.post(f"/chats/{chat_id}/prompt", {"name": "fx__nothing"}, expect=404)
    await admin_api.post(f"/chats/{chat_id}/prompt", {"name": "fx__greet"}, expect=502)
    await admin_api.post(
        f"/chats/{chat_id}/prompt", {"name": "fx__greet", "arguments": {"name": 1}}, expect=400
    )


async def test_the_model_reads_a_resource_with_the_builtin_tool(
    admin_api: Api, fake_model: FakeOpenAI, agent: RunningAgent
) -> None:
    chat_id = await new_chat(admin_api, agent.url)
    fake_model.add(
        Reply(calls=[Call("read_resource", {"uri": "fixture://note/plans"})]),
        Reply(calls=[Call("read_resource", {"uri": "fixture://doc/99", "server": "fx"})]),
        Reply(text="done"),
    )
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "read the note"}, expect=202)
    await admin_api.events(chat_id, turn_ended())
    assert "read_resource" in fake_model.tool_names(0)
    assert "note plans" in str(fake_model.tool_messages(1)[0]["content"])
    failed = str(fake_model.tool_messages(2)[-1]["content"])
    assert "fixture://doc/99" in failed and "404" in failed


async def test_admin_servers_resources_and_prompts(
    admin_api: Api,
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    spawn: Callable[..., subprocess.Popen[bytes]],
    everything_bin: Path,
    tmp_path: Path,
) -> None:
    port = start_everything(spawn, everything_bin, "streamableHttp", tmp_path / "everything.log")
    chat_id = await new_chat(admin_api, start_agent({}).url)
    await admin_api.post("/mcp-servers", {"slug": "ev", "url": f"http://127.0.0.1:{port}/mcp"}, expect=201)

    async def admin_resources() -> list[dict[str, Any]]:
        listed = (await admin_api.get(f"/chats/{chat_id}/resources"))["resources"]
        return [r for r in listed if r["source"] == "admin"]

    resources = await wait_until(admin_resources, timeout=30, message="the admin server's resources")
    text = next(r for r in resources if (r.get("mime_type") or "").startswith("text/"))
    assert text["server_name"] == "ev"
    prompts = [
        p for p in (await admin_api.get(f"/chats/{chat_id}/prompts"))["prompts"] if p["source"] == "admin"
    ]
    assert prompts and all(p["name"].startswith("ev__") for p in prompts)
    fake_model.add(Reply(text="ok"))
    attach = {"uri": text["uri"], "server": "ev", "source": "admin"}
    await admin_api.post(
        f"/chats/{chat_id}/messages", {"content": "see", "attachments": [attach]}, expect=202
    )
    await admin_api.events(chat_id, turn_ended())
    assert text["uri"] in user_texts(fake_model, 0)[-1]


async def test_editing_a_message_with_an_attachment_keeps_the_attachment(
    admin_api: Api, fake_model: FakeOpenAI, agent: RunningAgent
) -> None:
    chat_id = await new_chat(admin_api, agent.url)
    fake_model.add(Reply(text="a summary"), Reply(text="a translation"))
    body = {"content": "summarise this", "attachments": [{"uri": "fixture://doc/4", "server": "fx"}]}
    await admin_api.post(f"/chats/{chat_id}/messages", body, expect=202)
    await admin_api.events(chat_id, turn_ended())
    await admin_api.post(f"/chats/{chat_id}/retry", {"content": "translate this"}, expect=202)
    await admin_api.events(chat_id, turn_ended())
    sent = user_texts(fake_model, 1)
    assert len(sent) == 1 and "translate this" in sent[0] and "document 4" in sent[0]
    users = [m for m in await admin_api.messages(chat_id) if m["role"] == "user"]
    assert [m.get("superseded", False) for m in users] == [True, False]
    assert users[1]["parts"][0] == {"type": "text", "text": "translate this"}
    assert users[1]["parts"][1:] == users[0]["parts"][1:] and users[1]["parts"][1]["type"] == "resource"
