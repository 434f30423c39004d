"""Each recent chat's history kept between turns, so a turn's cost does not grow with the chat.

A chat's stored history only grows by appending, except when a retry or an edit supersedes
messages, which raises the chat's ``history_version``. So a kept copy (the rows and their
conversion for the model) is brought up to date by loading the messages after the last one it
holds; a copy of another version is dropped and the history loaded whole. That holds across
replicas too: whoever ran the turns in between, their messages are in the table and their
retries raised the version.

Memory stays bounded: at most ``max_chats`` chats and ``max_bytes`` of stored parts (as JSON);
past either the least recently used go, and a chat idle for ``idle_s`` goes at the next turn of
any chat. ``max_chats`` 0 keeps nothing (every turn loads and converts the whole history).
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import orjson
from pydantic_ai.messages import ModelMessage

from workdock.chat.catalog import RecentTools
from workdock.chat.context import FitMemo
from workdock.chat.convert import HistoryBuilder
from workdock.chat.store.models import Chat, Message
from workdock.chat.store.repo import Store

CHATS_ENV = "WORKDOCK_HISTORY_CACHE_CHATS"
MAX_CHATS = 64
MAX_BYTES = 64 * 1024 * 1024
IDLE_S = 600.0


def max_chats_from_env(env: Mapping[str, str] | None = None) -> int:
    value = (os.environ if env is None else env).get(CHATS_ENV, "").strip()
    try:
        number = int(value) if value else MAX_CHATS
    except ValueError:
        raise ValueError(f"{CHATS_ENV} must be a whole number of 0 or more, not {value!r}") from None
    if number < 0:
        raise ValueError(f"{CHATS_ENV} must be 0 or more (0: keep no history between turns), not {number}")
    return number


@dataclass(frozen=True)
class History:
    """A chat's history as the model is to read it (superseded messages left out)."""

    rows: list[Message]
    messages: list[ModelMessage]  # a new list each time: the turn appends its steps to it
    recent_tools: list[str]
    fit_memo: FitMemo | None = None  # what fitting the kept messages to the window worked out


@dataclass
class _Kept:
    version: int
    rows: list[Message] = field(default_factory=list)
    builder: HistoryBuilder = field(default_factory=HistoryBuilder)
    recent: RecentTools = field(default_factory=RecentTools)
    memo: FitMemo = field(default_factory=FitMemo)
    last_id: int = 0
    nbytes: int = 0
    used: float = 0.0

    def append(self, rows: Sequence[Message]) -> None:
        if rows:
            self.rows.extend(rows)
            self.memo.keep(self.builder.add(rows))
            self.recent.add(rows)
            self.last_id = rows[-1].id
            self.nbytes += sum(len(orjson.dumps(row.parts)) for row in rows)

    def history(self) -> History:
        return History(list(self.rows), self.builder.messages(), self.recent.names(), self.memo)


class HistoryCache:
    def __init__(
        self, max_chats: int = MAX_CHATS, max_bytes: int = MAX_BYTES, idle_s: float = IDLE_S
    ) -> None:
        self.max_chats = max_chats
        self.max_bytes = max_bytes
        self.idle_s = idle_s
        self._chats: OrderedDict[str, _Kept] = OrderedDict()
        self._bytes = 0

    async def load(self, store: Store, chat: Chat) -> History:
        """The chat's history: the kept copy brought up to date, or loaded whole."""
        kept = self._take(chat.id)
        if kept is not None and kept.version != chat.history_version:
            kept = None
        if kept is None:
            kept = _Kept(chat.history_version)
        kept.append(await store.list_messages(chat.id, include_superseded=False, after=kept.last_id))
        self._keep(chat.id, kept)
        return kept.history()

    def forget(self, chat_id: str) -> None:
        self._take(chat_id)

    def __len__(self) -> int:
        return len(self._chats)

    def _take(self, chat_id: str) -> _Kept | None:
        kept = self._chats.pop(chat_id, None)
        if kept is not None:
            self._bytes -= kept.nbytes
        return kept

    def _keep(self, chat_id: str, kept: _Kept) -> None:
        now = time.monotonic()
        while self._chats and now - next(iter(self._chats.values())).used > self.idle_s:
            self._take(next(iter(self._chats)))  # least recently used first: the idle ones lead
        if self.max_chats == 0 or kept.nbytes > self.max_bytes:
            return
        kept.used = now
        self._chats[chat_id] = kept
        self._bytes += kept.nbytes
        while len(self._chats) > self.max_chats or self._bytes > self.max_bytes:
            self._take(next(iter(self._chats)))
