"""Tool results as the model gets them (spec/chat.md 4.4), asserted on the request body the
fake OpenAI server received through pydantic-ai's real OpenAI provider."""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chat.conftest import Api
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.support.agent import RunningAgent, fixture_server
from tests.support.helpers import FIXTURES
from workdock.chat.convert import TEXT_CAP

sys.path.insert(0, str(FIXTURES))
from content_kinds import PNG_BYTES, STRUCTURED

pytestmark = pytest.mark.anyio


async def test_images_structured_content_and_long_text_reach_the_model_converted(
    admin_api: Api, fake_model: FakeOpenAI, start_agent: Callable[..., RunningAgent], workspace_dir: Path
) -> None:
    agent = start_agent({"kinds": fixture_server("content_kinds.py")})
    agent.wait_state("kinds", "ready")
    lines = [f"line {i:05d} " + "x" * 70 for i in range(1500)]  # ~120 KB, under the agent's read cap
    (workspace_dir / "big.txt").write_text("\n".join(lines) + "\n")
    chat_id = await new_chat(admin_api, agent.url)
    fake_model.add(
        Reply(
            calls=[
                Call("kinds__image", {}),
                Call("kinds__structured", {}),
                Call("read_file", {"path": "big.txt"}),
            ]
        ),
        Reply(text="ok"),
    )
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "show me"}, expect=202)
    await admin_api.events(chat_id, turn_ended())

    sent = fake_model.requests[1]["messages"]
    tool = {m["tool_call_id"]: m["content"] for m in sent if m["role"] == "tool"}
    image_id, structured_id, read_id = (c["id"] for c in sent[1]["tool_calls"])

    # The image: the tool message points at a file, which follows as an image_url data URL in a user
    # message (chat completions only take text in tool messages), framed with the call it came from.
    assert json.loads(tool[image_id]) == [f"See file {_file_id(tool[image_id])}."]
    [files] = [m for m in sent if m["role"] == "user" and isinstance(m["content"], list)]
    opening, image, closing = files["content"]
    assert f'tool_call_id="{image_id}"' in opening["text"] and closing["text"].startswith("</")
    assert image["type"] == "image_url"
    prefix = "data:image/png;base64,"
    assert image["image_url"]["url"].startswith(prefix)
    assert base64.b64decode(image["image_url"]["url"][len(prefix) :]) == PNG_BYTES

    # Structured content arrives as JSON, once (the server also sent it as text).
    assert json.loads(tool[structured_id]) == STRUCTURED

    # Over 64 KiB of text: cut, with a note saying how much.
    text = tool[read_id]
    note = re.search(r"\n\[output cut: (\d+) of (\d+) bytes not shown\]$", text)
    assert note, text[-300:]
    kept = text[: note.start()]
    cut, total = int(note.group(1)), int(note.group(2))
    assert len(kept.encode()) == TEXT_CAP  # all ASCII: the cut falls exactly at the cap
    assert cut == total - len(kept.encode()) and total > 120_000
    assert "line 00000" in kept.splitlines()[0]  # the start is kept


def _file_id(content: str) -> str:
    found = re.search(r"See file (\w+)\.", content)
    assert found, content
    return found.group(1)
