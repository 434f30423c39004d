"""One turn: gather tools, run the model step by step, call tools concurrently, persist, publish.

Each step (the assistant message and its tool results) is stored in one transaction as soon as
it completes and only then published as ``data-message``, so what a watcher was told is stored
is stored. pydantic-ai is used as a model client only; the loop, the tool calls and the events
are ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic_ai.direct import model_request_stream
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartEndEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ThinkingPart,
    ThinkingPartDelta,
    ToolCallPart,
    ToolCallPartDelta,
    ToolReturnPart,
)
from pydantic_ai.models import Model, ModelRequestParameters

from workdock.agentapi import CallToolResult
from workdock.chat import approval_step, events
from workdock.chat.approvals import ApprovalWaiters
from workdock.chat.call_reporter import TurnCallReporter
from workdock.chat.catalog import Budget, ChatOffer, StepTools, no_such_tool, recent_tools
from workdock.chat.context import HistoryFitter, context_window
from workdock.chat.convert import for_model, for_storage, result_text, to_model_messages
from workdock.chat.eventlog import ChatChannel
from workdock.chat.history_cache import History, HistoryCache
from workdock.chat.model_errors import MODEL_FAILURES, describe_model_error
from workdock.chat.models import ModelCatalog, ModelError
from workdock.chat.store.approvals import ApprovalStore
from workdock.chat.store.faults import database_fault
from workdock.chat.store.leases import Leases
from workdock.chat.store.models import Message, StepCall
from workdock.chat.store.repo import LeaseLost, NewMessage, Store, TurnStart
from workdock.chat.tools.base import error_result
from workdock.chat.toolset import ToolGatherer
from workdock.mcp.questions import Questions
from workdock.memory import give_back, rss

logger = logging.getLogger(__name__)

MAX_STEPS = 50
STREAM_ERROR_PREVIEW = 4000


@dataclass
class _Step:
    """What the running step has produced so far, so an interrupt can store what exists."""

    texts: dict[int, str] = field(default_factory=dict)
    response: ModelResponse | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # tool_call_id → stored part
    reporters: dict[str, TurnCallReporter] = field(default_factory=dict)  # what each call reported
    # Set once the step is being stored: an interrupt then waits for it instead of storing it twice.
    persisting: asyncio.Future[list[Message]] | None = None
    published: bool = False
    # The step waits for approval: its assistant message is stored already, and its calls' state
    # is in ``step_calls`` (tool_call_id → the state this turn last saw).
    waiting: dict[str, str] | None = None
    resumed: bool = False  # taken up after a restart: a call stored as running was cut off


class Publisher(Protocol):
    def publish(self, chunk: events.Chunk) -> object: ...


class TurnFailed(Exception):
    """The turn cannot go on; the message is for the user."""


@dataclass
class TurnEnd:
    """How a turn ended, for its scheduler: the chat's new status, and whether it was stored (a
    database that cannot be written leaves it unstored; the scheduler then keeps trying), or that
    the chat was lost to another replica (nothing of it may be written)."""

    status: str = "error"
    stored: bool = False
    lost: bool = False


@dataclass
class CallOutcome:
    result: CallToolResult
    duration_ms: int


class TurnRunner:
    def __init__(
        self,
        store: Store,
        gatherer: ToolGatherer,
        models: ModelCatalog,
        max_steps: int = MAX_STEPS,
        *,
        leases: Leases,
        owner: str,
        questions: Questions | None = None,
        waiters: ApprovalWaiters | None = None,
        budget: Budget | None = None,
        history: HistoryCache | None = None,
    ) -> None:
        self.store = store
        self.history = history if history is not None else HistoryCache()
        self.gatherer = gatherer
        self.models = models
        self.max_steps = max_steps
        self.approvals = ApprovalStore(store)
        self.waiters = waiters or ApprovalWaiters()
        self.budget = budget or Budget()
        # Every write of a turn is made only while this replica (``owner``) holds the chat's lease.
        self.leases = leases
        self.owner = owner
        # The running calls' requests for input (kept by the replica that runs the turn).
        self.questions = questions if questions is not None else Questions()
        self.stopping = False  # the server is shutting down: turns cancelled now say so

    async def run(
        self, chat_id: str, start: TurnStart, channel: ChatChannel, end: TurnEnd | None = None
    ) -> None:
        """Run the turn for ``start.message`` (already stored), publishing on ``channel``; never
        raises except on cancellation.

        ``end`` is filled in with the status the chat ends in and whether it was stored.
        """
        end = end or TurnEnd()
        publish = channel.publish
        publish(events.status("running"))
        if start.superseded:
            publish(events.superseded(start.superseded))
        publish(events.message(start.message))
        publish(events.start(uuid.uuid4().hex))
        step = _Step()
        grown_from = rss()
        try:
            final = await self._run(chat_id, channel, step, start)
        except asyncio.CancelledError:
            if self.stopping and step.waiting is not None and step.persisting is None:
                # A shutdown while the step waits for approval: its state is stored, and the next
                # start takes the turn up again (the chat stays running until then).
                end.status, end.stored = "running", True
                raise
            # Interrupted (by the user or a shutdown): keep what the step produced, then say so.
            end.status = "interrupted"
            if channel.lost:  # another replica has the chat: it says what became of this turn
                end.lost = True
                raise
            if start.resume and step.waiting is None and step.persisting is None:
                with contextlib.suppress(Exception):  # stored as far as it can be, below
                    await asyncio.shield(self._restore_waiting(chat_id, step))
            end.stored = await asyncio.shield(self._store_interrupted(chat_id, channel, step))
            raise
        except LeaseLost:
            end.lost = True
            return
        except TurnFailed as exc:
            end.stored = await self._fail(chat_id, channel, str(exc))
            return
        except Exception as exc:  # a model or database failure ends the turn, not the server
            fault = database_fault(exc)
            if fault is not None:
                logger.error("chat %s: turn failed: %s (%s)", chat_id, fault.message, fault.detail)
                why = f"the turn could not be stored: {fault.message} ({fault.detail})"
            else:
                logger.exception("chat %s: turn failed", chat_id)
                why = f"{type(exc).__name__}: {exc}"
            end.stored = await self._fail(chat_id, channel, why)
            return
        finally:
            for question in self.questions.owned_by(chat_id):  # a safety net: each call closes its own
                self.questions.close(question)
            give_back(rss() - grown_from)  # a large tool result is stored and sent by now
        # _run's last write set the chat idle, with the step or the step-limit notice.
        end.status, end.stored = "idle", True
        publish(events.finish(final))
        publish(events.status("idle", **({"reason": final} if final != "stop" else {})))

    async def _run(self, chat_id: str, channel: ChatChannel, step: _Step, start: TurnStart) -> str:
        """The step loop; returns the finish reason."""
        chat = await self.store.get_chat(chat_id)
        workspace = await self.store.get_workspace(chat.workspace_id) if chat else None
        if chat is None or workspace is None:
            raise TurnFailed("the chat or its workspace was deleted")
        try:
            model_name, model = self.models.get(chat.model)
        except ModelError as exc:
            raise TurnFailed(str(exc)) from exc
        toolset = await self.gatherer.gather(chat, workspace)
        if toolset.failures:
            channel.publish(events.status("running", tool_failures=[f.describe() for f in toolset.failures]))
        resumed: tuple[ModelResponse, Sequence[StepCall]] | None = None
        taken = 0
        if start.resume:
            # Taken up after a restart: the history ends with the waiting step's assistant message;
            # the model's answer is rebuilt from it and its calls' state from ``step_calls``.
            self.history.forget(chat_id)
            stored = await self.store.list_messages(chat_id, include_superseded=False)
            waiting, stored = stored[-1], stored[:-1]
            resumed = await self._waiting_step(chat_id, waiting)
            channel.publish(events.message(waiting))
            taken = sum(1 for m in stored if m.id > start.message.id and m.role == "assistant")
            kept = History(list(stored), to_model_messages(stored), recent_tools(stored))
        else:  # the history as the last turn left it, and what was stored since
            kept = await self.history.load(self.store, chat)
        history = kept.messages
        offer = ChatOffer.for_chat(toolset, chat, self.budget, kept.recent_tools)
        fitter = HistoryFitter(context_window(model_name, self.models.windows), kept.fit_memo)
        for index in range(taken, self.max_steps):
            step.__init__()  # type: ignore[misc]  # a fresh record for this step
            if index > taken:  # toggles and budget changed during the turn apply from its next step
                chat = await self.store.get_chat(chat_id) or chat
                offer.update(chat, self.budget)
            offered = offer.step()
            params = ModelRequestParameters(function_tools=offered.definitions)
            sent = fitter.fit(history, offered.sent_tokens)  # long chats: the oldest results shortened
            channel.publish(events.start_step())
            if resumed is not None:
                response, rows_before = resumed
                resumed = None
                step.response = response
                calls = [p for p in response.parts if isinstance(p, ToolCallPart)]
                for call in calls:
                    channel.publish(
                        events.tool_input_available(call.tool_call_id, call.tool_name, _args(call))
                    )
                await approval_step.run(
                    self, chat_id, model_name, offered, calls, set(), channel, step, rows_before
                )
            else:
                try:
                    response = await self._model_step(model, sent, params, channel, step)
                except MODEL_FAILURES as exc:
                    # The provider failed, not us: one line for the user; the traceback only at debug level.
                    message = describe_model_error(model_name, model, exc)
                    logger.warning("chat %s: %s", chat_id, message)
                    logger.debug("chat %s: the model call failed", chat_id, exc_info=True)
                    raise TurnFailed(message) from exc
                calls = [p for p in response.parts if isinstance(p, ToolCallPart)]
                asking = await approval_step.asking(self, chat_id, offered, calls)
                if asking:  # its assistant message and calls are stored before anything waits
                    await approval_step.run(
                        self, chat_id, model_name, offered, calls, asking, channel, step, None
                    )
                else:
                    if calls:  # noted before they run: a replica taking over must not run them again
                        await self._record_calls(chat_id, model_name, offered, response, calls, step)
                    await asyncio.gather(
                        *(self._call(chat_id, offered, call, channel, step) for call in calls)
                    )
                    # The last step also settles the chat's status: one transaction, not two.
                    step.persisting = asyncio.ensure_future(
                        self.store.add_messages(
                            chat_id,
                            self._step_messages(model_name, offered, response, step),
                            status=None if calls else "idle",
                            owner=self.owner,
                        )
                    )
                    rows = await asyncio.shield(step.persisting)
                    for row in rows:
                        channel.publish(events.message(row))
                    step.published = True
            channel.publish(events.finish_step())
            if not calls:
                return "stop"
            history.append(response)
            history.append(
                ModelRequest(
                    parts=[
                        ToolReturnPart(
                            tool_name=call.tool_name,
                            content=for_model(
                                step.results[call.tool_call_id]["content"],
                                step.results[call.tool_call_id].get("structured_content"),
                            ),
                            tool_call_id=call.tool_call_id,
                            outcome="failed" if step.results[call.tool_call_id]["is_error"] else "success",
                        )
                        for call in calls
                    ]
                )
            )
        await self._stop_at_step_limit(chat_id, channel)
        return "step-limit"

    async def _stop_at_step_limit(self, chat_id: str, channel: ChatChannel) -> None:
        """Say why the turn stopped, in the stream and in the history (a reload must show it too).

        The last step's tool results are stored but the model has not seen them; the next message
        goes on from there.
        """
        notice = (
            f"Stopped after {self.max_steps} steps, the most one turn may take. "
            "Send a message to let the model go on."
        )
        rows = await self.store.add_messages(
            chat_id,
            [NewMessage("assistant", [{"type": "error", "text": notice, "reason": "step-limit"}])],
            status="idle",
            owner=self.owner,
        )
        for row in rows:
            channel.publish(events.message(row))
        channel.publish(events.error(notice))

    async def _model_step(
        self,
        model: Model,
        history: list[ModelMessage],
        params: ModelRequestParameters,
        channel: ChatChannel,
        step: _Step,
    ) -> ModelResponse:
        """Stream one model response, publishing its text and tool-input chunks as they come."""
        publish = channel.publish
        part_ids: dict[int, str] = {}
        async with model_request_stream(model, history, model_request_parameters=params) as stream:
            async for event in stream:
                if isinstance(event, PartStartEvent):
                    part = event.part
                    if isinstance(part, TextPart):
                        part_ids[event.index] = pid = f"text-{uuid.uuid4().hex[:12]}"
                        publish(events.text_start(pid))
                        step.texts[event.index] = part.content
                        if part.content:
                            publish(events.text_delta(pid, part.content))
                    elif isinstance(part, ThinkingPart):
                        part_ids[event.index] = pid = f"reasoning-{uuid.uuid4().hex[:12]}"
                        publish(events.reasoning_start(pid))
                        if part.content:
                            publish(events.reasoning_delta(pid, part.content))
                    elif isinstance(part, ToolCallPart):
                        part_ids[event.index] = part.tool_call_id
                        publish(events.tool_input_start(part.tool_call_id, part.tool_name))
                        if isinstance(part.args, str) and part.args:
                            publish(events.tool_input_delta(part.tool_call_id, part.args))
                elif isinstance(event, PartDeltaEvent):
                    known = part_ids.get(event.index)
                    delta = event.delta
                    if known is None:
                        continue
                    pid = known
                    if isinstance(delta, TextPartDelta) and delta.content_delta:
                        step.texts[event.index] = step.texts.get(event.index, "") + delta.content_delta
                        publish(events.text_delta(pid, delta.content_delta))
                    elif isinstance(delta, ThinkingPartDelta) and delta.content_delta:
                        publish(events.reasoning_delta(pid, delta.content_delta))
                    elif (
                        isinstance(delta, ToolCallPartDelta)
                        and isinstance(delta.args_delta, str)
                        and delta.args_delta
                    ):
                        publish(events.tool_input_delta(pid, delta.args_delta))
                elif isinstance(event, PartEndEvent):
                    known = part_ids.get(event.index)
                    part = event.part
                    if known is None:
                        continue
                    pid = known
                    if isinstance(part, TextPart):
                        publish(events.text_end(pid))
                    elif isinstance(part, ThinkingPart):
                        publish(events.reasoning_end(pid))
            response = stream.get()
        # Announced from the finished response, not at each part's end: parallel calls stream their
        # arguments interleaved, and a call's part "ends" when the next one starts.
        for part in response.parts:
            if isinstance(part, ToolCallPart):
                publish(events.tool_input_available(part.tool_call_id, part.tool_name, _args(part)))
        step.response = response
        return response

    async def _call(
        self, chat_id: str, toolset: StepTools, call: ToolCallPart, channel: Publisher, step: _Step
    ) -> CallOutcome:
        """Run one tool call; any failure becomes an error result the model can read."""
        started = time.perf_counter()
        reporter = step.reporters[call.tool_call_id] = TurnCallReporter(
            channel.publish, chat_id, call.tool_call_id, self.questions
        )
        tool = toolset.tools.get(call.tool_name)
        try:
            arguments = call.args_as_dict(raise_if_invalid=True)
        except (ValueError, AssertionError):
            arguments = None
        if tool is None:
            result = error_result(no_such_tool(toolset, call.tool_name))
        elif arguments is None:
            result = error_result(f"the arguments for {call.tool_name} are not a JSON object: {call.args!r}")
        else:
            try:
                result = await tool.call(arguments, reporter)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a source's bug must not end the turn
                logger.exception("tool %s raised", call.tool_name)
                result = error_result(f"tool {call.tool_name} failed: {type(exc).__name__}: {exc}")
            finally:
                reporter.close()
        duration_ms = round((time.perf_counter() - started) * 1000)
        return self._record(call, result, duration_ms, channel, step)

    def _record(
        self,
        call: ToolCallPart,
        result: CallToolResult,
        duration_ms: int | None,
        channel: Publisher,
        step: _Step,
        *,
        denied: bool = False,
    ) -> CallOutcome:
        """Keep a call's result for the step's tool message and stream it."""
        content, structured = for_storage(result)
        step.results[call.tool_call_id] = {
            "type": "tool-result",
            "tool_call_id": call.tool_call_id,
            "tool_name": call.tool_name,
            "is_error": result.is_error,
            "content": content,
            "duration_ms": duration_ms,
        }
        if structured is not None:  # only what the text does not already carry
            step.results[call.tool_call_id]["structured_content"] = structured
        if denied:
            step.results[call.tool_call_id]["denied"] = True
            channel.publish(events.tool_output_denied(call.tool_call_id))
        elif result.is_error:
            channel.publish(
                events.tool_output_error(call.tool_call_id, result_text(result)[:STREAM_ERROR_PREVIEW])
            )
        else:
            channel.publish(
                events.tool_output_available(
                    call.tool_call_id,
                    {
                        "content": content,
                        "structured_content": structured,
                        "duration_ms": duration_ms,
                    },
                )
            )
        return CallOutcome(result, duration_ms or 0)

    async def _record_calls(
        self,
        chat_id: str,
        model_name: str,
        toolset: StepTools,
        response: ModelResponse,
        calls: list[ToolCallPart],
        step: _Step,
    ) -> None:
        assistant = self._step_messages(model_name, toolset, response, step)[0]
        pending = {
            "message": {"parts": assistant.parts, "model": assistant.model, "usage": assistant.usage},
            "calls": [{"tool_call_id": c.tool_call_id, "tool_name": c.tool_name} for c in calls],
        }
        await self.leases.record_calls(chat_id, self.owner, pending)

    def _step_messages(
        self, model_name: str, toolset: StepTools | None, response: ModelResponse | None, step: _Step
    ) -> list[NewMessage]:
        parts: list[dict[str, Any]] = []
        calls: list[ToolCallPart] = []
        if response is not None:
            for part in response.parts:
                if isinstance(part, TextPart) and part.content:
                    parts.append({"type": "text", "text": part.content})
                elif isinstance(part, ThinkingPart) and part.content:
                    parts.append({"type": "reasoning", "text": part.content})
                elif isinstance(part, ToolCallPart):
                    calls.append(part)
                    tool = toolset.tools.get(part.tool_name) if toolset else None
                    parts.append(
                        {
                            "type": "tool-call",
                            "tool_call_id": part.tool_call_id,
                            "tool_name": part.tool_name,
                            "source": tool.source if tool else None,
                            "server": tool.server if tool else None,
                            "args": _args(part),
                        }
                    )
        else:  # interrupted while the model was still answering: keep the text it had sent
            parts = [{"type": "text", "text": text} for _, text in sorted(step.texts.items()) if text]
        messages: list[NewMessage] = []
        if parts:
            usage = None
            if response is not None:
                usage = {
                    "input_tokens": response.usage.input_tokens,
                    "output_tokens": response.usage.output_tokens,
                }
            messages.append(NewMessage("assistant", parts, model=model_name, usage=usage))
        if calls:
            results = [step.results.get(call.tool_call_id) or _unfinished(call, step) for call in calls]
            messages.append(NewMessage("tool", results))
        return messages

    async def _waiting_step(self, chat_id: str, waiting: Message) -> tuple[ModelResponse, Sequence[StepCall]]:
        """A stored waiting step: the model's answer rebuilt from its assistant message, and the
        state of its calls."""
        rebuilt = to_model_messages([waiting])[0]
        assert isinstance(rebuilt, ModelResponse)
        return rebuilt, await self.approvals.calls(chat_id)

    async def _restore_waiting(self, chat_id: str, step: _Step) -> None:
        """A taken-up turn interrupted before its waiting step was rebuilt: rebuild it, so that its
        calls are stored as not run (or with the results they had) rather than left unanswered."""
        stored = await self.store.list_messages(chat_id, include_superseded=False)
        if not stored or stored[-1].role != "assistant":
            return
        step.response, rows = await self._waiting_step(chat_id, stored[-1])
        step.waiting = {r.tool_call_id: r.state for r in rows}
        step.results = {r.tool_call_id: r.result for r in rows if r.result is not None}

    async def _store_interrupted(self, chat_id: str, channel: ChatChannel, step: _Step) -> bool:
        """Store what the step produced, then the interrupted mark, which also settles the status;
        False if that could not be stored."""
        mark = NewMessage("assistant", [events.interrupted_part("server" if self.stopping else "user")])
        stored = False
        try:
            chat = await self.store.get_chat(chat_id)
            if chat is not None:
                messages = [mark]
                if step.persisting is not None:  # the step was being stored when the interrupt came
                    rows = await step.persisting
                    if not step.published:
                        for row in rows:
                            channel.publish(events.message(row))
                elif step.waiting is not None:
                    # Its assistant message is stored: add its results (a call that still waited
                    # for an answer is stored as not run) and the mark, and drop the waiting state.
                    results = [
                        step.results.get(call_id) or _not_run(call_id, name, step.waiting.get(call_id))
                        for call_id, name in _call_names(step.response)
                    ]
                    for row in await self.approvals.finish_step(
                        chat_id, [NewMessage("tool", results), mark], status="interrupted", owner=self.owner
                    ):
                        channel.publish(events.message(row))
                    messages = []
                else:
                    model_name = chat.model or self.models.default or ""
                    messages = [*self._step_messages(model_name, None, step.response, step), mark]
                if messages:
                    for row in await self.store.add_messages(
                        chat_id, messages, status="interrupted", owner=self.owner
                    ):
                        channel.publish(events.message(row))
            stored = True
        except LeaseLost:
            return False  # another replica has the chat (or it was deleted): it is not ours to mark
        except Exception as exc:
            logger.error("chat %s: could not store the interrupted step: %r", chat_id, exc)
        channel.publish(events.abort())
        channel.publish(events.status("interrupted"))
        return stored

    async def _fail(self, chat_id: str, channel: ChatChannel, message: str) -> bool:
        """End the turn with an error the user can read, stored so the history shows it too.
        False if the chat's new status could not be stored."""
        stored = False
        try:
            rows = await self.store.add_messages(
                chat_id,
                [NewMessage("assistant", [{"type": "error", "text": message}])],
                status="error",
                owner=self.owner,
            )
            for row in rows:
                channel.publish(events.message(row))
            stored = True
        except Exception as exc:
            logger.error("chat %s: could not store the turn's error: %r", chat_id, exc)
        channel.publish(events.error(message))
        channel.publish(events.finish("error"))
        channel.publish(events.status("error", error=message))
        return stored


def _unfinished(call: ToolCallPart, step: _Step) -> dict[str, Any]:
    """The stored result of a call the turn's end cut off: what it printed so far, and that it was
    interrupted."""
    reporter = step.reporters.get(call.tool_call_id)
    printed = reporter.output_so_far() if reporter is not None else ""
    note = "interrupted before this call finished"
    text = f"{printed}\n[{note}]" if printed else note
    return {
        "type": "tool-result",
        "tool_call_id": call.tool_call_id,
        "tool_name": call.tool_name,
        "is_error": True,
        "duration_ms": None,
        "content": [{"type": "text", "text": text}],
        "interrupted": True,
    }


def _args(part: ToolCallPart) -> Any:
    try:
        return part.args_as_dict(raise_if_invalid=True)
    except (ValueError, AssertionError):
        return part.args


def _call_names(response: ModelResponse | None) -> list[tuple[str, str]]:
    return [
        (p.tool_call_id, p.tool_name)
        for p in (response.parts if response else [])
        if isinstance(p, ToolCallPart)
    ]


def _not_run(call_id: str, tool_name: str, state: str | None) -> dict[str, Any]:
    """The stored result of a call an interrupt cut off."""
    waited = state in ("pending", "approved", "denied")
    text = (
        "not run: the turn was interrupted while this call waited for approval"
        if waited
        else "interrupted before this call finished"
    )
    part: dict[str, Any] = {
        "type": "tool-result",
        "tool_call_id": call_id,
        "tool_name": tool_name,
        "is_error": True,
        "duration_ms": None,
        "content": [{"type": "text", "text": text}],
    }
    if waited:
        part["not_run"] = True
    return part
