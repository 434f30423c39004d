"""An upstream's request for input, put to a 2026-07-28 client as ``input_required``.

A client of that era is not sent requests during a call: the server answers ``input_required``
with its questions and the client calls again with the answers (``input_responses``) and the
state it was given (``request_state``). An upstream server, though, asks while its call runs (a
2025-era server's ``elicitation/create``, or the connection's own retry rounds for a 2026 one).
So such a call runs in a task of its own: when the upstream asks, the client's request is
answered ``input_required`` with that question and a token naming the held call; the client's
retry with the token hands its answer to the waiting upstream and waits again, for the result
or the next question. A client that never comes back has the question declined after
``answer_wait`` seconds (the upstream carries on), and a held result is forgotten as long after.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError

from workdock.mcp.hooks import AskFn, declined

logger = logging.getLogger(__name__)

MAX_HELD = 64  # calls held between a client's rounds at once; beyond it, requests are declined
ANSWER_WAIT = 300.0  # seconds a held question waits for the client's retry

CallFn = Callable[[AskFn], Awaitable[types.CallToolResult]]


@dataclass
class _Held:
    """One call in its own task: what it says next (a question, its result) and its pending answer."""

    token: str
    tool: str
    events: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)
    # The questions put to the client and not answered yet, by their key in input_requests.
    answers: dict[str, asyncio.Future[types.ElicitResult]] = field(default_factory=dict)
    asked: int = 0
    outcome: tuple[str, Any] | None = None  # the end, taken from the queue while gathering questions
    task: asyncio.Task[None] | None = None


class InputRelay:
    def __init__(self, answer_wait: float = ANSWER_WAIT, max_held: int = MAX_HELD) -> None:
        self.answer_wait = answer_wait
        self.max_held = max_held
        self._held: dict[str, _Held] = {}

    def can_hold(self) -> bool:
        return len(self._held) < self.max_held

    async def start(self, tool: str, call: CallFn) -> types.CallToolResult | types.InputRequiredResult:
        """Run ``call`` in a task of its own; its result, or its first question."""
        held = _Held(token=secrets.token_urlsafe(24), tool=tool)
        self._held[held.token] = held
        held.task = asyncio.get_running_loop().create_task(self._run(held, call))
        return await self._next(held)

    async def resume(
        self, state: str, tool: str, responses: types.InputResponses | None
    ) -> types.CallToolResult | types.InputRequiredResult:
        """The retry of a held call: its answer to the upstream, then the result or the next question."""
        held = self._held.get(state)
        if held is None or held.tool != tool:
            raise MCPError(types.INVALID_PARAMS, "unknown or expired requestState for this tool")
        answers, held.answers = held.answers, {}
        for key, future in answers.items():
            answer = (responses or {}).get(key)
            if future.done():
                continue  # declined already: the client took too long
            if isinstance(answer, types.ElicitResult):
                future.set_result(answer)
            else:
                future.set_result(declined("the MCP client retried without answering the request for input"))
        return await self._next(held)

    def close(self) -> None:
        """Cancel every held call (the server is stopping)."""
        for held in list(self._held.values()):
            if held.task is not None:
                held.task.cancel()
        self._held.clear()

    async def _run(self, held: _Held, call: CallFn) -> None:
        async def ask(params: types.ElicitRequestParams) -> types.ElicitResult:
            held.asked += 1
            key = f"elicit-{held.asked}"
            answer = held.answers[key] = asyncio.get_running_loop().create_future()
            await held.events.put(("ask", (key, params)))
            try:
                return await asyncio.wait_for(asyncio.shield(answer), self.answer_wait)
            except TimeoutError:
                logger.info("tool %s: the MCP client did not answer a request for input in time", held.tool)
                return declined(f"the MCP client did not answer within {self.answer_wait:g} s")

        try:
            try:
                outcome: tuple[str, Any] = ("done", await call(ask))
            except Exception as exc:  # the caller's own errors (MCPError), passed to whoever waits
                outcome = ("failed", exc)
            await held.events.put(outcome)
            # Nobody may come back for it (the client went away between rounds): forget it then.
            await asyncio.sleep(self.answer_wait)
        finally:
            self._held.pop(held.token, None)

    async def _next(self, held: _Held) -> types.CallToolResult | types.InputRequiredResult:
        try:
            kind, value = held.outcome or await held.events.get()
        except asyncio.CancelledError:
            # The client hung up while the call ran: nobody will collect it, so it is cancelled
            # (upstream too).
            self._forget(held)
            raise
        if kind == "ask":
            requests: types.InputRequests = {value[0]: types.ElicitRequest(params=value[1])}
            while not held.events.empty():  # questions asked side by side go in one round
                event = held.events.get_nowait()
                if event[0] != "ask":
                    held.outcome = event
                    break
                key, params = event[1]
                requests[key] = types.ElicitRequest(params=params)
            return types.InputRequiredResult(input_requests=requests, request_state=held.token)
        self._forget(held)
        if kind == "failed":
            raise value
        result: types.CallToolResult = value
        return result

    def _forget(self, held: _Held) -> None:
        self._held.pop(held.token, None)
        if held.task is not None:
            held.task.cancel()
