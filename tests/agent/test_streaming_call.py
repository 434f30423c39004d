"""The streaming call-tool and exec (Accept: text/event-stream): progress, requests for input
answered by id, output as a command prints it; and the plain call that cannot ask, declined."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.support.agent import TOKEN, RunningAgent, fixture_server
from tests.support.helpers import wait_until
from tests.support.http_stub import Answer
from workdock.agentapi import (
    AgentClient,
    AgentError,
    CallEvent,
    CallToolResult,
    Elicitation,
    ExecResult,
    Output,
    Progress,
)

pytestmark = pytest.mark.anyio

ERAS = {"legacy": {"FIXTURE_ERA": "legacy"}, "modern": {}}


def _text(result: CallToolResult) -> str:
    return "\n".join(block.text or "" for block in result.content)


async def _next(events: Any) -> CallEvent:
    return await events.__anext__()  # type: ignore[no-any-return]


def _asking_agent(start_agent: Any, era: str) -> RunningAgent:
    agent = start_agent({"asks": fixture_server("asks_user.py", **ERAS[era])})
    server = agent.wait_state("asks", "ready")
    assert (server["protocol_version"] == "2026-07-28") == (era == "modern"), server
    return agent


async def test_progress_streams_then_the_result_is_the_plain_body(start_agent) -> None:
    agent = start_agent({"slow": fixture_server("slow_tool.py")})
    agent.wait_state("slow", "ready")
    async with AgentClient(agent.url, TOKEN) as client:
        events = [e async for e in client.call_tool_events("slow__sleep", {"seconds": 1})]
    progress = [e for e in events if isinstance(e, Progress)]
    assert len(progress) >= 2, events
    assert progress[-1].total == 1 and progress[-1].progress == pytest.approx(1)
    assert progress[0].message and "of 1 s" in progress[0].message
    assert isinstance(events[-1], CallToolResult) and _text(events[-1]) == "slept 1 seconds"
    # the result event carries exactly what the plain route answers
    with httpx2.stream(
        "POST",
        f"{agent.url}/api/v0/mcp/call-tool",
        json={"tool_name": "slow__echo", "arguments": {"text": "same"}},
        headers={"Authorization": f"Bearer {TOKEN}", "Accept": "text/event-stream"},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line.startswith("data:")]
    assert lines[-1].removeprefix("data:").strip() == agent.call("slow__echo", {"text": "same"}).text


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_a_request_for_input_is_relayed_and_answered_by_id(start_agent, era: str) -> None:
    agent = _asking_agent(start_agent, era)
    async with AgentClient(agent.url, TOKEN) as client:
        async with aclosing(client.call_tool_events("asks__ask", {"question": "Name?"})) as events:
            asked = await _next(events)
            assert isinstance(asked, Elicitation)
            assert asked.message == "Name?" and asked.mode == "form"
            assert asked.requested_schema and asked.requested_schema["required"] == ["answer"]
            # content that does not fit the schema is refused, and the question stays open
            with pytest.raises(AgentError) as bad:
                await client.answer_elicitation(asked.id, "accept", {"count": 0})
            assert bad.value.status == 400 and "answer" in (bad.value.detail or "")
            with pytest.raises(AgentError) as unknown:
                await client.answer_elicitation("no-such-id", "decline")
            assert unknown.value.status == 404
            answered = await client.answer_elicitation(asked.id, "accept", {"answer": "Ada", "count": 2})
            assert answered.action == "accept"
            # (A second answer is a 409 while the call runs: tested with ask_twice, where the call
            # provably still runs; here the call may already be over, and then it is a 404.)
            result = await _next(events)
        # the call is over, and its question is still known to have been answered
        with pytest.raises(AgentError) as late:
            await client.answer_elicitation(asked.id, "accept", {"answer": "Bob"})
        assert late.value.status == 409
    assert isinstance(result, CallToolResult) and _text(result) == "accepted: Ada x2 sure=None"


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_two_rounds_of_questions_and_a_decline(start_agent, era: str) -> None:
    agent = _asking_agent(start_agent, era)
    async with AgentClient(agent.url, TOKEN) as client:
        async with aclosing(client.call_tool_events("asks__ask_twice")) as events:
            first_id = None
            for key, value in (("first", "one"), ("second", "two")):
                asked = await _next(events)
                assert isinstance(asked, Elicitation) and asked.message.lower().startswith(key)
                if first_id is not None:
                    # the call waits on the second question: the answered first one is kept
                    with pytest.raises(AgentError) as twice:
                        await client.answer_elicitation(first_id, "decline")
                    assert twice.value.status == 409
                first_id = asked.id
                await client.answer_elicitation(asked.id, "accept", {key: value})
            result = await _next(events)
        assert isinstance(result, CallToolResult) and _text(result) == "got one and two"

        for action in ("decline", "cancel"):
            async with aclosing(client.call_tool_events("asks__ask")) as events:
                asked = await _next(events)
                assert isinstance(asked, Elicitation)
                await client.answer_elicitation(asked.id, action)  # type: ignore[arg-type]
                result = await _next(events)
            assert isinstance(result, CallToolResult) and _text(result) == f"{action}d".replace(
                "canceld", "cancelled"
            )


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_a_plain_call_that_asks_is_declined_not_a_502(start_agent, era: str) -> None:
    agent = _asking_agent(start_agent, era)
    response = agent.call("asks__ask", {"question": "Name?"})
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "declined"
    agent.wait_for(lambda: "cannot ask the user" in agent.log(), 10, "the decline to be logged")


async def test_hanging_up_while_a_question_waits_ends_the_call(start_agent) -> None:
    agent = _asking_agent(start_agent, "legacy")
    async with AgentClient(agent.url, TOKEN) as client:
        async with aclosing(client.call_tool_events("asks__ask")) as events:
            asked = await _next(events)
            assert isinstance(asked, Elicitation)

        async def gone() -> bool:
            # An answer that does not fit the form changes nothing while the question is open (400)
            # and is a 404 once it is closed; a real answer here could be taken before the hang-up.
            try:
                await client.answer_elicitation(asked.id, "accept", {"count": "two"})
            except AgentError as exc:
                assert exc.status in (400, 404), exc
                return exc.status == 404
            raise AssertionError("an answer that does not fit the form was taken")

        await wait_until(gone, timeout=10, message="the question to close with its call")
        # the server is still usable
        assert _text(await client.call_tool("asks__echo", {"text": "still here"})) == "still here"


async def test_stream_errors_before_and_during_the_call(start_agent) -> None:
    agent = start_agent({"slow": fixture_server("slow_tool.py")})
    agent.wait_state("slow", "ready")
    async with AgentClient(agent.url, TOKEN) as client:
        with pytest.raises(AgentError) as missing:
            [e async for e in client.call_tool_events("slow__nope")]
        assert missing.value.status == 404
        with pytest.raises(AgentError) as late:
            [e async for e in client.call_tool_events("slow__sleep", {"seconds": 5}, timeout_ms=300)]
        assert late.value.status == 504 and "did not answer" in late.value.message
    bad = agent.http.post("/api/v0/mcp/call-tool", content=b"{", headers={"Accept": "text/event-stream"})
    assert bad.status_code == 400 and set(bad.json()) == {"message", "detail"}


async def test_everything_progress_and_elicitation_over_http(start_agent, everything_http_url: str) -> None:
    agent = start_agent({"ev": {"type": "http", "url": everything_http_url}})
    agent.wait_state("ev", "ready", timeout=30)
    names = set(agent.tool_names())
    assert "ev__trigger-elicitation-request" in names  # offered because the agent can now ask
    async with AgentClient(agent.url, TOKEN) as client:
        events = [
            e
            async for e in client.call_tool_events(
                "ev__trigger-long-running-operation", {"duration": 1, "steps": 3}
            )
        ]
        assert [(e.progress, e.total) for e in events if isinstance(e, Progress)] == [(1, 3), (2, 3), (3, 3)]
        assert isinstance(events[-1], CallToolResult) and "completed" in _text(events[-1])

        async with aclosing(client.call_tool_events("ev__trigger-elicitation-request")) as stream:
            asked = await _next(stream)
            assert isinstance(asked, Elicitation) and asked.requested_schema
            assert "name" in asked.requested_schema["properties"]
            await client.answer_elicitation(asked.id, "accept", {"name": "Grace Hopper", "check": True})
            result = await _next(stream)
        assert isinstance(result, CallToolResult) and "Grace Hopper" in _text(result)


async def test_exec_streams_output_while_the_command_runs(start_agent, workspace_dir: Path) -> None:
    agent = start_agent({})
    command = "echo ready; while [ ! -f go ]; do sleep 0.05; done; printf 'd\\xc3\\xa9j\\xc3\\xa0 vu\\n'"
    async with AgentClient(agent.url, TOKEN) as client:
        async with aclosing(client.exec_events(command, timeout_ms=30_000)) as events:
            first = await events.__anext__()
            # the command cannot end before it is told to: this output came while it ran
            assert isinstance(first, Output) and first.text == "ready\n"
            (workspace_dir / "go").write_text("")
            rest = [e async for e in events]
    outputs = "".join(e.text for e in rest if isinstance(e, Output))
    assert outputs == "déjà vu\n"
    result = rest[-1]
    assert isinstance(result, ExecResult) and result.exit_code == 0
    assert result.output == "ready\ndéjà vu\n"


async def test_exec_stream_hung_up_ends_the_command(start_agent, workspace_dir: Path) -> None:
    agent = start_agent({})
    async with AgentClient(agent.url, TOKEN) as client:
        async with aclosing(client.exec_events("echo $$ > pid; echo started; sleep 60")) as events:
            assert isinstance(await events.__anext__(), Output)
        pid = int((workspace_dir / "pid").read_text())

    def ended() -> bool:
        try:
            import os

            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    agent.wait_for(ended, 15, "the shell to be ended when the caller hung up")


async def test_hanging_up_a_streamed_call_cancels_it_upstream(start_agent, tmp_path: Path) -> None:
    log = tmp_path / "cancelled.jsonl"
    agent = start_agent({"slow": fixture_server("slow_tool.py", CANCEL_LOG=str(log))})
    agent.wait_state("slow", "ready")
    async with AgentClient(agent.url, TOKEN) as client:
        async with aclosing(client.call_tool_events("slow__sleep", {"seconds": 120})) as events:
            assert isinstance(await _next(events), Progress)
    agent.wait_for(lambda: log.exists() and log.read_text().strip(), 15, "notifications/cancelled upstream")


async def test_an_agent_that_answers_plain_json_is_understood(start_agent, http_stub) -> None:
    """An agent from before streaming ignores `Accept` and answers the plain body: the streaming
    methods take it as the result (the chat server keeps working with such an agent)."""
    agent = start_agent({"slow": fixture_server("slow_tool.py")})
    agent.wait_state("slow", "ready")
    # What a plain agent answers, taken from the real agent in this run.
    answers = {
        "/api/v0/mcp/call-tool": agent.call("slow__echo", {"text": "plain"}).content,
        "/api/v0/exec": agent.http.post("/api/v0/exec", json={"command": "echo plain"}).content,
    }
    older = http_stub(
        lambda request: Answer(200, {"content-type": "application/json"}, answers[request.path])
    )
    async with AgentClient(older.url, TOKEN) as client:
        called = [e async for e in client.call_tool_events("slow__echo", {"text": "plain"})]
        ran = [e async for e in client.exec_events("echo plain")]
    assert called == [CallToolResult.model_validate_json(answers["/api/v0/mcp/call-tool"])]
    assert _text(called[0]) == "plain"
    assert len(ran) == 1 and isinstance(ran[0], ExecResult) and ran[0].output == "plain\n"
    assert [r.headers["accept"] for r in older.requests] == ["text/event-stream"] * 2
