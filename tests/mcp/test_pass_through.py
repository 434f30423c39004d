"""A result the agent passes on unvalidated (``Hub.call_wire``) answers exactly what the models'
path (``Hub.call`` then ``result_to_dict``) answers, on both protocol eras, and anything outside
the plain shape goes the models' way."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from support.helpers import FIXTURES
from workdock.agent.child_env import workspace_env
from workdock.mcp.config import parse_entry
from workdock.mcp.content import raw_result_to_dict, result_to_dict
from workdock.mcp.hub import Hub

pytestmark = pytest.mark.anyio

KINDS = [
    "text",
    "image",
    "audio",
    "resource_text",
    "resource_blob",
    "resource_link",
    "all_kinds",
    "structured",
    "structured_mismatch",
    "structured_summary",
    "fail",
]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    servers = {
        "kinds": {"command": sys.executable, "args": [str(FIXTURES / "content_kinds.py")]},
        "huge": {"command": sys.executable, "args": [str(FIXTURES / "huge_result.py")]},
    }
    async with Hub(workspace=tmp_path, child_env=workspace_env, connect_timeout=60) as hub:
        await hub.apply([parse_entry(name, spec, os.environ) for name, spec in servers.items()])
        with anyio.fail_after(90):
            while {s.name: s.state for s in hub.statuses()} != {"kinds": "ready", "huge": "ready"}:
                await hub.wait_for_change()
        yield hub


async def test_every_content_kind_passes_through_as_the_models_give_it(hub: Hub) -> None:
    eras = {s.name: s.protocol_version for s in hub.statuses()}
    assert eras["kinds"] == "2026-07-28" and eras["huge"] != "2026-07-28"  # one server of each era
    for tool in KINDS:
        wire = await hub.call_wire(f"kinds__{tool}")
        assert wire == result_to_dict(await hub.call(f"kinds__{tool}")), tool
    wire = await hub.call_wire("huge__echo", {"text": "über ✓"})
    assert wire == {
        "content": [{"type": "text", "text": "über ✓"}],
        "is_error": False,
        "structured_content": None,
    }
    assert wire == result_to_dict(await hub.call("huge__echo", {"text": "über ✓"}))


async def test_calls_in_flight_together_each_get_their_own_answer(hub: Hub) -> None:
    """Requests written to the server's stdin together (one write) are answered one by one."""
    answers: dict[int, Any] = {}

    async def one(i: int) -> None:
        answers[i] = await hub.call_wire("huge__echo", {"text": f"call {i}"})

    async with anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(one, i)
    assert {i: a["content"][0]["text"] for i, a in answers.items()} == {i: f"call {i}" for i in range(40)}


@pytest.mark.parametrize(
    "raw",
    [
        {"content": "not a list"},
        {"content": [{"type": "text", "text": 3}]},
        {"content": [{"type": "image", "data": "AA=="}]},  # no mimeType
        {"content": [{"type": "resource", "resource": {"uri": "file:///a"}}]},  # neither text nor blob
        {"content": [{"type": "video", "url": "x"}]},  # a block type this revision does not know
        {"content": [], "isError": "yes"},
        {"content": [], "structuredContent": [1, 2]},
        {"resultType": "input_required", "inputRequests": {}},
        {"content": ["text"]},
    ],
)
def test_a_result_outside_the_plain_shape_is_left_to_the_models(raw: dict[str, Any]) -> None:
    assert raw_result_to_dict(raw) is None
