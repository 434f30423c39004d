"""A running tool call's reports on its card: progress, live output, and requests for input.

Everything goes out through the turn's publish call as chunks of ``events`` (so every watcher
sees it, and a reload replays it from the turn's start). Published output is bounded per call,
progress is thinned to a few updates a second (the last one always shown), and what a command
printed is kept (head and tail) so an interrupted call can store it with its result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from workdock.chat import events
from workdock.chat.events import Chunk
from workdock.chat.tools.base import Answer
from workdock.mcp.questions import Questions, request_params

LIVE_OUTPUT_CAP = 256 * 1024  # characters of live output published per call; the result has the rest
KEEP_HEAD = 32 * 1024  # characters of output kept for an interrupted call's result: the first ...
KEEP_TAIL = 32 * 1024  # ... and the last
PROGRESS_EVERY_S = 0.2


class TurnCallReporter:
    """The reporter of one call of a turn (see ``tools.base.CallReporter``)."""

    def __init__(
        self, publish: Callable[[Chunk], object], chat_id: str, call_id: str, questions: Questions
    ) -> None:
        self._publish = publish
        self._chat_id = chat_id
        self._call_id = call_id
        self._questions = questions
        self._published_output = 0
        self._head = ""
        self._tail = ""
        self._cut = 0  # characters between head and tail that were not kept
        self._progress_at = 0.0
        self._progress_later: asyncio.TimerHandle | None = None
        self._pending_progress: Chunk | None = None

    # ---- progress --------------------------------------------------------------------------------

    def progress(self, progress: float, total: float | None, message: str | None) -> None:
        self._pending_progress = events.tool_progress(self._call_id, progress, total, message)
        if self._progress_later is not None:
            return  # a publish is already due; it takes the newest report
        wait = self._progress_at + PROGRESS_EVERY_S - time.monotonic()
        if wait <= 0:
            self._flush_progress()
        else:
            self._progress_later = asyncio.get_running_loop().call_later(wait, self._flush_progress)

    def _flush_progress(self) -> None:
        self._progress_later = None
        if self._pending_progress is not None:
            self._publish(self._pending_progress)
            self._pending_progress = None
            self._progress_at = time.monotonic()

    # ---- output ----------------------------------------------------------------------------------

    def output(self, text: str) -> None:
        self._keep(text)
        room = LIVE_OUTPUT_CAP - self._published_output
        if room <= 0:
            return
        piece = text[:room]
        self._published_output += len(piece)
        if len(piece) < len(text):
            piece += "\n[... live output stops here; the result has the end of it ...]\n"
        self._publish(events.tool_output(self._call_id, piece))

    def _keep(self, text: str) -> None:
        if len(self._head) < KEEP_HEAD:
            take = KEEP_HEAD - len(self._head)
            self._head += text[:take]
            text = text[take:]
        self._tail += text
        if len(self._tail) > KEEP_TAIL:
            self._cut += len(self._tail) - KEEP_TAIL
            self._tail = self._tail[-KEEP_TAIL:]

    def output_so_far(self) -> str:
        """What the call printed (head and tail, with a marker where the middle was cut)."""
        if self._cut:
            return f"{self._head}\n[... {self._cut} characters of output cut ...]\n{self._tail}"
        return self._head + self._tail

    # ---- requests for input ------------------------------------------------------------------------

    async def ask(self, request: dict[str, Any]) -> Answer:
        """Show the request on the card and wait for the answer from the API; an answer that never
        comes (the turn interrupted, the call over) leaves the request expired."""
        question = self._questions.open(request_params(request), owner=self._chat_id)
        if question is None:
            return Answer("decline")
        shown: dict[str, Any] = {
            key: request[key] for key in ("mode", "message", "requested_schema", "url") if key in request
        }
        self._publish(events.tool_elicitation(self._call_id, question.id, shown))
        status: events.ElicitationStatus = "expired"
        try:
            result = await question.wait()
            if not question.expired:
                status = result.action
            content = dict(result.content) if result.content is not None else None
            return Answer(result.action, content)
        finally:
            self._questions.close(question)  # an answered one's id stays known: a second answer is a 409
            self._publish(events.tool_elicitation(self._call_id, question.id, shown, status))

    def close(self) -> None:
        """The call is over: send the last progress report now."""
        if self._progress_later is not None:
            self._progress_later.cancel()
            self._flush_progress()
