"""Long chats: what the model is sent when the history nears its context window.

The oldest tool results are shortened, with a note, in the messages sent; the stored history is
never changed. Sizes are estimated (see ``catalog.BYTES_PER_TOKEN``): no tokenizer is at hand
without a download at run time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from pydantic_ai.messages import (
    BinaryContent,
    ModelMessage,
    ModelRequest,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from workdock.chat.catalog import BYTES_PER_TOKEN

# Context windows (tokens) of common models; a name not listed here gets DEFAULT_WINDOW unless
# WORKDOCK_MODELS gives it one (``openai:NAME@TOKENS``). The longest matching prefix wins.
WINDOWS: dict[str, int] = {
    "openai:gpt-4.1": 1_047_576,
    "openai:gpt-4o": 128_000,
    "openai:gpt-4-turbo": 128_000,
    "openai:gpt-5": 400_000,
    "openai:o1": 200_000,
    "openai:o3": 200_000,
    "openai:o4-mini": 200_000,
    "anthropic:claude-": 200_000,
}
DEFAULT_WINDOW = 128_000
START_AT = 0.75  # shortening starts when the estimate passes this share of the window...
SHORTEN_TO = 0.5  # ...and goes on, oldest result first, until it is below this share
KEEP_CHARS = 400  # what a shortened result keeps of its start
IMAGE_TOKENS = 1_000  # an image's estimated cost


def context_window(model: str, configured: dict[str, int]) -> int:
    if model in configured:
        return configured[model]
    matches = [prefix for prefix in WINDOWS if model.startswith(prefix)]
    return WINDOWS[max(matches, key=len)] if matches else DEFAULT_WINDOW


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return math.ceil(len(content.encode()) / BYTES_PER_TOKEN)
    if isinstance(content, BinaryContent):
        return IMAGE_TOKENS
    if isinstance(content, list):
        return sum(_content_tokens(item) for item in content)
    return math.ceil(len(orjson.dumps(content, default=str)) / BYTES_PER_TOKEN)


def _part_tokens(part: Any) -> int:
    if isinstance(part, UserPromptPart | TextPart | ThinkingPart | ToolReturnPart):
        return _content_tokens(part.content)
    if isinstance(part, ToolCallPart):
        return _content_tokens(part.args if part.args is not None else "")
    return 0


def history_tokens(messages: Sequence[ModelMessage]) -> int:
    return sum(_part_tokens(part) for message in messages for part in message.parts)


def _shortened(part: ToolReturnPart) -> tuple[ToolReturnPart, int]:
    """The part with its content cut to its start and a note; the tokens that saves."""
    content = part.content
    if isinstance(content, str):
        text, others = content, ""
    elif isinstance(content, list):
        text = "\n".join(c for c in content if isinstance(c, str))
        others = " and its images left out"
    else:
        return part, 0
    before = _content_tokens(content)
    if not others and len(text) <= KEEP_CHARS:
        return part, 0
    kept = text[:KEEP_CHARS]
    note = (
        f"{kept}\n[an older tool result, shortened for the model as the chat nears its context window: "
        f"{len(text) - len(kept)} of {len(text)} characters not shown{others}; "
        "the chat's history keeps it whole]"
    )
    return replace(part, content=note), before - _content_tokens(note)


@dataclass
class FitMemo:
    """What fitting worked out for a chat's kept history, reused by the turns after
    (chat/history_cache.py): each kept message's size, and its shortening where every tool result
    of it was shortened. Only messages the cache ``keep``s are memoised, so it holds nothing a
    turn appended on its own."""

    sizes: dict[int, tuple[ModelMessage, int]] = field(default_factory=dict)
    # id → (message, shortened, tokens saved, tokens saved before its last tool result)
    short: dict[int, tuple[ModelMessage, ModelMessage, int, int]] = field(default_factory=dict)

    def keep(self, messages: Sequence[ModelMessage]) -> None:
        for message in messages:
            self.sizes[id(message)] = (message, sum(_part_tokens(p) for p in message.parts))


class HistoryFitter:
    """Fits one turn's history to the model's window at each step. The turn's history only grows
    by appending, so each message's size and each shortened result are worked out once (keyed by
    the message object, which the history keeps alive).

    With a ``memo`` of the turns before, a message's first shortening in this turn is taken from
    it only where working it out again would give the same: all its results shortened then, and
    the estimate still above the target after all but the last."""

    def __init__(self, window: int, memo: FitMemo | None = None) -> None:
        self.window = window
        self.memo = memo
        self._sizes: dict[int, tuple[ModelMessage, int]] = {}
        self._short: dict[int, tuple[ModelMessage, ModelMessage, int]] = {}

    def _size(self, message: ModelMessage) -> int:
        for sizes in (self._sizes, self.memo.sizes if self.memo is not None else {}):
            known = sizes.get(id(message))
            if known is not None and known[0] is message:
                return known[1]
        size = self._sizes[id(message)] = (message, sum(_part_tokens(p) for p in message.parts))
        return size[1]

    def _shorten(self, message: ModelRequest, target: float, total: int) -> tuple[ModelMessage, int]:
        known = self._short.get(id(message))
        if known is not None and known[0] is message:
            return known[1], known[2]
        memo = self.memo.short.get(id(message)) if self.memo is not None else None
        if memo is not None and memo[0] is message and total - memo[3] > target:
            self._short[id(message)] = (message, memo[1], memo[2])
            return memo[1], memo[2]
        parts, saved, before_last, whole = list(message.parts), 0, 0, True
        for i, part in enumerate(parts):
            if isinstance(part, ToolReturnPart):
                if total - saved > target:
                    before_last = saved
                    parts[i], cut = _shortened(part)
                    saved += cut
                else:
                    whole = False
        short: ModelMessage = replace(message, parts=parts) if saved else message
        self._short[id(message)] = (message, short, saved)
        if self.memo is not None and whole and (self.memo.sizes.get(id(message)) or (None,))[0] is message:
            self.memo.short[id(message)] = (message, short, saved, before_last)
        return short, saved

    def fit(self, messages: list[ModelMessage], reserved: int = 0) -> list[ModelMessage]:
        """``messages`` as sent, ``reserved`` tokens of the window already taken (the tools'
        schemas): unchanged while the estimate is below START_AT of the window; otherwise the
        oldest tool results before the last user message are shortened until it is below
        SHORTEN_TO. The messages passed in are not changed."""
        total = sum(self._size(m) for m in messages) + reserved
        if total <= self.window * START_AT:
            return messages
        target = self.window * SHORTEN_TO
        last_prompt = next(  # looked for from the end: it is near it
            (
                i
                for i in range(len(messages) - 1, -1, -1)
                if any(isinstance(p, UserPromptPart) for p in messages[i].parts)
            ),
            len(messages),
        )
        out = list(messages)
        for index in range(last_prompt):
            if total <= target:
                break
            message = out[index]
            if isinstance(message, ModelRequest):
                out[index], saved = self._shorten(message, target, total)
                total -= saved
        return out


def fit_history(messages: list[ModelMessage], window: int, reserved: int = 0) -> list[ModelMessage]:
    """One-off ``HistoryFitter(window).fit(messages, reserved)``."""
    return HistoryFitter(window).fit(messages, reserved)
