"""`workdock chat`: `@uri` attaches a resource, `/server__prompt key=value` runs a prompt."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.chat.conftest import Api, ChatServer
from tests.chat.fake_openai import FakeOpenAI, Reply
from tests.chat.test_chat_resources_prompts import user_texts
from tests.chat.test_cli_chat import run_chat
from tests.chat.test_turn_e2e import new_chat
from tests.support.agent import RunningAgent, fixture_server

# Each run starts a Python process: several of them outlast the default timeout on a busy machine.
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]


async def test_at_uri_and_slash_prompt_in_the_terminal(
    chat_server: ChatServer, admin_api: Api, fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent]
) -> None:
    agent = start_agent({"fx": fixture_server("offerings.py")})
    agent.wait_state("fx", "ready")
    chat_id = await new_chat(admin_api, agent.url)

    fake_model.add(Reply(text="It says document 2."))
    attached = run_chat(chat_server, "--chat", chat_id, "--message", "what is in @fixture://doc/2 ?")
    assert attached.returncode == 0, attached.stdout + attached.stderr
    sent = user_texts(fake_model, 0)[-1]
    assert sent.startswith("what is in ?") and "document 2" in sent
    user = [m for m in await admin_api.messages(chat_id) if m["role"] == "user"][-1]
    assert user["parts"][1]["uri"] == "fixture://doc/2" and user["parts"][1]["server"] == "fx"

    fake_model.add(Reply(text="Hi Ada."))
    prompted = run_chat(chat_server, "--chat", chat_id, "--message", '/fx__greet name="Ada Lovelace"')
    assert prompted.returncode == 0, prompted.stdout + prompted.stderr
    assert user_texts(fake_model, 1)[-1] == "Hello, Ada Lovelace!"


async def test_listings_and_mistakes_in_the_terminal(
    chat_server: ChatServer, admin_api: Api, fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent]
) -> None:
    agent = start_agent({"fx": fixture_server("offerings.py")})
    agent.wait_state("fx", "ready")
    chat_id = await new_chat(admin_api, agent.url)
    listing = run_chat(chat_server, "--chat", chat_id, "--message", "/prompts")
    assert listing.returncode == 0 and "/fx__greet" in listing.stdout and "name*" in listing.stdout
    resources = run_chat(chat_server, "--chat", chat_id, "--message", "/resources")
    assert "@fixture://doc/5" in resources.stdout

    missing = run_chat(chat_server, "--chat", chat_id, "--message", "/fx__greet")
    assert missing.returncode == 1 and "needs name=" in missing.stdout
    bad = run_chat(chat_server, "--chat", chat_id, "--message", "look at @fixture://doc/99")
    assert bad.returncode != 0 and "fixture://doc/99" in bad.stdout
    assert fake_model.requests == []  # nothing reached the model
