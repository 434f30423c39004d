"""A step of which some tool calls wait for the user's approval (chat/approvals.py has the
policy, store/approvals.py the stored state): the turn runner hands such a step here.

The step's assistant message and its calls' state are stored before anything waits, each call's
result as it finishes (and only then streamed), and the step's tool message when all are in; a
step taken up after a restart goes on from that stored state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic_ai.messages import ToolCallPart

from workdock.chat import events
from workdock.chat.approvals import ChatPolicy
from workdock.chat.catalog import StepTools
from workdock.chat.eventlog import ChatChannel
from workdock.chat.store.approvals import WaitingCall
from workdock.chat.store.models import StepCall
from workdock.chat.store.repo import NewMessage
from workdock.chat.tools.base import error_result

if TYPE_CHECKING:
    from workdock.chat.turn import TurnRunner, _Step

STREAM_ERROR_PREVIEW = 4000


_RESULTS = frozenset({"tool-output-available", "tool-output-error", "tool-output-denied"})


@dataclass
class _Held:
    """A call's result chunk kept back until the result is stored; its progress, output and
    requests for input go out at once."""

    channel: ChatChannel
    chunks: list[events.Chunk] = field(default_factory=list)

    def publish(self, chunk: events.Chunk) -> None:
        if chunk.get("type") in _RESULTS:
            self.chunks.append(chunk)
        else:
            self.channel.publish(chunk)


async def asking(runner: TurnRunner, chat_id: str, toolset: StepTools, calls: list[ToolCallPart]) -> set[str]:
    """The ids of the calls that must wait for the user, by the chat's policy as it is now (an
    "always allow" given during the turn counts from the next step on)."""
    if not calls:
        return set()
    chat = await runner.store.get_chat(chat_id)
    policy = ChatPolicy.of(chat.approval_policy if chat else None, chat.always_allow if chat else None)
    return {c.tool_call_id for c in calls if policy.asks(toolset.tools.get(c.tool_name))}


async def run(
    runner: TurnRunner,
    chat_id: str,
    model_name: str,
    toolset: StepTools,
    calls: list[ToolCallPart],
    asking: set[str],
    channel: ChatChannel,
    step: _Step,
    stored: Sequence[StepCall] | None,
) -> None:
    """Run a step of which some calls wait for the user's answer; the others run meanwhile.

    New: the assistant message and the calls' state are stored first. Taken up after a
    restart (``stored``): calls that had finished keep their result, a call that was running
    is recorded as interrupted (a call runs at most once), pending ones wait again.
    """
    if stored is None:
        assistant = runner._step_messages(model_name, toolset, step.response, step)[0]
        row = await runner.approvals.begin_wait(
            chat_id,
            assistant,
            [WaitingCall(c.tool_call_id, c.tool_name, c.tool_call_id in asking) for c in calls],
            owner=runner.owner,
        )
        channel.publish(events.message(row))
        step.waiting = {c.tool_call_id: "pending" if c.tool_call_id in asking else "running" for c in calls}
        results: dict[str, dict[str, Any]] = {}
    else:
        step.waiting = {r.tool_call_id: r.state for r in stored}
        step.resumed = True
        results = {r.tool_call_id: r.result for r in stored if r.result is not None}
    for call in calls:
        if step.waiting.get(call.tool_call_id) == "pending":
            channel.publish(events.tool_approval_request(call.tool_call_id))
    await asyncio.gather(
        *(
            _settle_call(runner, chat_id, toolset, call, results.get(call.tool_call_id), channel, step)
            for call in calls
        )
    )
    tool_message = NewMessage("tool", [step.results[c.tool_call_id] for c in calls])
    step.persisting = asyncio.ensure_future(
        runner.approvals.finish_step(chat_id, [tool_message], status=None, owner=runner.owner)
    )
    for row in await asyncio.shield(step.persisting):
        channel.publish(events.message(row))
    step.published = True


async def _settle_call(
    runner: TurnRunner,
    chat_id: str,
    toolset: StepTools,
    call: ToolCallPart,
    done: dict[str, Any] | None,
    channel: ChatChannel,
    step: _Step,
) -> None:
    """One call of a waiting step, from the state it is stored in to its stored result."""
    assert step.waiting is not None
    call_id = call.tool_call_id
    state = step.waiting.get(call_id, "running")
    if done is not None:  # finished before a restart
        step.results[call_id] = done
        text = "\n".join(c.get("text") or "" for c in done.get("content") or [] if c.get("type") == "text")
        channel.publish(
            events.tool_output_error(call_id, text[:STREAM_ERROR_PREVIEW])
            if done.get("is_error")
            else events.tool_output_available(
                call_id,
                {
                    "content": done.get("content"),
                    "structured_content": done.get("structured_content"),
                    "duration_ms": done.get("duration_ms"),
                },
            )
        )
        return
    reason: str | None = None
    if state in ("pending", "approved", "denied"):
        if state == "pending":
            answer = await runner.waiters.wait_answer(runner.approvals, chat_id, call_id)
            state, reason = answer.state, answer.reason
        else:
            reason = next(
                (r.reason for r in await runner.approvals.calls(chat_id) if r.tool_call_id == call_id), None
            )
        step.waiting[call_id] = state
        channel.publish(events.tool_approval_response(call_id, state == "approved", reason))
    # The result is streamed once it is stored: what a watcher saw survives a restart.
    held = _Held(channel)
    if state == "denied":
        text = "the user denied this call" + (f": {reason}" if reason else " (no reason given)")
        runner._record(call, error_result(text), None, held, step, denied=True)
    elif state == "approved" or (state == "running" and not step.resumed):
        if state == "approved":
            step.waiting[call_id] = "running"
            await runner.approvals.set_state(chat_id, call_id, "running", owner=runner.owner)
        await runner._call(chat_id, toolset, call, held, step)
    else:  # it was running when the server stopped: recorded as cut off, never run again
        text = "the server stopped while this call ran; it was not run again"
        runner._record(call, error_result(text), None, held, step)
    step.waiting[call_id] = "done"
    await runner.approvals.set_state(
        chat_id, call_id, "done", result=step.results[call_id], owner=runner.owner
    )
    for chunk in held.chunks:
        channel.publish(chunk)
