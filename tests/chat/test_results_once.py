"""A tool result reaches the model, the stream, the history and `workdock call` once: the official
servers send their data as text and again as structuredContent, and only what the text does not
carry is added (spec/chat.md 4.4)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.agent.test_cli import workdock
from tests.chat.conftest import Api
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.support.agent import TOKEN, RunningAgent, fixture_server, node_server
from workdock.agentapi import CallToolResult, ContentBlock
from workdock.chat.convert import TEXT_CAP, for_model, for_storage

pytestmark = pytest.mark.anyio

OBSERVATION = "wrote the first program in 1843"
NOTES = 'line one of the notes\nline two, with "quotes" and a tab\there\n'


def official_servers(workspace_dir: Path, tmp_path: Path) -> dict[str, Any]:
    return {
        "memory": node_server("memory", MEMORY_FILE_PATH=str(tmp_path / "memory.jsonl")),
        "filesystem": node_server("filesystem", str(workspace_dir)),
        "kinds": fixture_server("content_kinds.py"),
    }


async def test_the_official_servers_results_reach_the_model_once(
    admin_api: Api,
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    workspace_dir: Path,
    tmp_path: Path,
) -> None:
    (workspace_dir / "notes.txt").write_text(NOTES)
    agent = start_agent(official_servers(workspace_dir, tmp_path))
    for name in ("memory", "filesystem", "kinds"):
        agent.wait_state(name, "ready", timeout=60)
    entity = {"name": "Ada", "entityType": "person", "observations": [OBSERVATION]}
    chat_id = await new_chat(admin_api, agent.url)
    fake_model.add(
        Reply(
            calls=[
                Call("memory__create_entities", {"entities": [entity]}),
                Call("filesystem__read_text_file", {"path": str(workspace_dir / "notes.txt")}),
                Call("kinds__structured_summary", {}),
            ]
        ),
        Reply(calls=[Call("memory__read_graph", {})]),
        Reply(text="done"),
    )
    await admin_api.post(f"/chats/{chat_id}/messages", {"content": "remember Ada"}, expect=202)
    events = await admin_api.events(chat_id, turn_ended())

    first = fake_model.requests[1]["messages"]
    create_id, read_id, summary_id = (c["id"] for c in first[-4]["tool_calls"])
    sent = {m["tool_call_id"]: m["content"] for m in first if m["role"] == "tool"}
    # memory: the entities as JSON text, and {"entities": <the same>} as structured content
    assert sent[create_id].count(OBSERVATION) == 1
    assert json.loads(sent[create_id]) == [entity]
    # filesystem: the file's text, and {"content": <the same text>}
    assert sent[read_id] == NOTES.rstrip("\n") or sent[read_id] == NOTES
    # a text that does not carry the data: the data follows as JSON, once
    summary_text, summary_json = sent[summary_id].split("\n")
    assert summary_text == "a reading in celsius"
    assert json.loads(summary_json) == {"temperature": 21.5, "unit": "celsius"}

    second = fake_model.requests[2]["messages"]
    graph = next(m["content"] for m in second if m["role"] == "tool" and m["tool_call_id"] not in sent)
    assert graph.count(OBSERVATION) == 1 and json.loads(graph)["entities"] == [entity]

    # The stream and the stored history keep structured content only where it adds something.
    outputs = {e["toolCallId"]: e["output"] for _, e in events if e["type"] == "tool-output-available"}
    assert outputs[create_id]["structured_content"] is None
    assert outputs[read_id]["structured_content"] is None
    assert outputs[summary_id]["structured_content"] == {"temperature": 21.5, "unit": "celsius"}
    results = {
        p["tool_call_id"]: p
        for m in await admin_api.messages(chat_id)
        if m["role"] == "tool"
        for p in m["parts"]
    }
    assert "structured_content" not in results[create_id]
    assert "structured_content" not in results[read_id]
    assert results[summary_id]["structured_content"] == {"temperature": 21.5, "unit": "celsius"}
    stored_text = "\n".join(c["text"] for c in results[create_id]["content"] if c["type"] == "text")
    assert stored_text.count(OBSERVATION) == 1


def test_workdock_call_prints_a_result_once(
    start_agent: Callable[..., RunningAgent], workspace_dir: Path, tmp_path: Path
) -> None:
    (workspace_dir / "notes.txt").write_text(NOTES)
    agent = start_agent(official_servers(workspace_dir, tmp_path))
    for name in ("memory", "filesystem", "kinds"):
        agent.wait_state(name, "ready", timeout=60)
    env = {"WORKDOCK_AGENT_TOKEN": TOKEN, "WORKDOCK_AGENT_URL": agent.url}

    read = workdock(
        "call", "filesystem__read_text_file", "-a", f"path={workspace_dir / 'notes.txt'}", env=env
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout.count("line one of the notes") == 1 and "structured content" not in read.stdout

    entities = json.dumps(
        {"entities": [{"name": "Ada", "entityType": "person", "observations": [OBSERVATION]}]}
    )
    created = workdock("call", "memory__create_entities", "--args", entities, env=env)
    assert created.returncode == 0, created.stderr
    assert created.stdout.count(OBSERVATION) == 1 and "structured content" not in created.stdout

    # --json is the raw answer: the structured content is there, as the server sent it
    raw = json.loads(workdock("call", "memory__read_graph", "--json", env=env).stdout)
    assert raw["structured_content"]["entities"][0]["observations"] == [OBSERVATION]

    summary = workdock("call", "kinds__structured_summary", env=env)
    assert summary.returncode == 0, summary.stderr
    assert "a reading in celsius" in summary.stdout and "structured content" in summary.stdout
    assert '"temperature": 21.5' in summary.stdout


def test_the_cut_applies_to_what_the_model_reads_once() -> None:
    text = "x" * (TEXT_CAP - 100)
    result = CallToolResult(
        content=[ContentBlock(type="text", text=text)], structured_content={"content": text}
    )
    content, structured = for_storage(result)
    assert structured is None
    assert for_model(content, structured) == text  # under the cap: nothing cut, nothing repeated


def test_structured_content_is_added_only_when_the_text_does_not_carry_it() -> None:
    def sent(result: CallToolResult) -> Any:
        return for_model(*for_storage(result))

    alone = CallToolResult(structured_content={"a": [1, 2]})
    assert json.loads(sent(alone)) == {"a": [1, 2]}
    same_json = CallToolResult(
        content=[ContentBlock(type="text", text='{"a": [1, 2]}')], structured_content={"a": [1, 2]}
    )
    assert sent(same_json) == '{"a": [1, 2]}'
    summary = CallToolResult(
        content=[ContentBlock(type="text", text="two items")], structured_content={"a": [1, 2]}
    )
    assert sent(summary) == 'two items\n{"a":[1,2]}'
    strings_in_text = CallToolResult(
        content=[ContentBlock(type="text", text="Entities deleted successfully")],
        structured_content={"success": True, "message": "Entities deleted successfully"},
    )
    assert sent(strings_in_text) == "Entities deleted successfully"
    # a result stored before only the needed structured content was kept: its text has the JSON
    legacy = [{"type": "text", "text": 'two items\n{"a":[1,2]}'}]
    assert for_model(legacy, {"a": [1, 2]}) == 'two items\n{"a":[1,2]}'
