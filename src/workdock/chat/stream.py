"""Per-chat event log with ids, replay from ``Last-Event-ID`` and any number of live watchers.

Ids are ``<boot>-<seq>``: ``seq`` grows for the life of the process, ``boot`` changes on every
start, so an id from before a restart is recognised as stale and the client gets the whole
current turn instead of a wrong slice of it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson

from workdock.chat.events import Chunk

BOOT = secrets.token_hex(3)


@dataclass(slots=True)
class Event:
    seq: int
    data: bytes  # the JSON payload, encoded once however many watchers there are

    @property
    def id(self) -> str:
        return f"{BOOT}-{self.seq}"


@dataclass
class ChatChannel:
    """Events of the running turn (and the one before it, for slow reconnects)."""

    events: list[Event] = field(default_factory=list)
    turn_start: int = 0  # index in ``events`` where the current turn begins
    seq: int = 0
    closed: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self, chunk: Chunk) -> Event:
        self.seq += 1
        event = Event(self.seq, orjson.dumps(chunk))
        self.events.append(event)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()  # wake every watcher waiting on the old event
        return event

    def begin_turn(self) -> None:
        """Drop all but the previous turn's events; the new turn's events start here."""
        del self.events[: self.turn_start]
        self.turn_start = len(self.events)

    def close(self) -> None:
        self.closed = True
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _index_after(self, last_event_id: str | None) -> int:
        """Where a watcher resumes: after its last seen event, else at the start of the current turn."""
        if last_event_id:
            boot, _, seq_text = last_event_id.partition("-")
            if boot == BOOT and seq_text.isdigit():
                seq = int(seq_text)
                first = self.events[0].seq if self.events else self.seq + 1
                if seq >= first - 1:
                    return max(0, seq - first + 1)
        return self.turn_start

    async def watch(self, last_event_id: str | None = None) -> AsyncIterator[Event]:
        index = self._index_after(last_event_id)
        first_seq = self.events[0].seq if self.events else self.seq + 1
        while not self.closed:
            changed = self._changed
            # ``events`` may have been trimmed at a turn start: re-base on sequence numbers.
            base = self.events[0].seq if self.events else self.seq + 1
            index -= base - first_seq
            first_seq = base
            index = max(index, 0)
            while index < len(self.events):
                yield self.events[index]
                index += 1
            await changed.wait()


class EventBus:
    def __init__(self) -> None:
        self._channels: dict[str, ChatChannel] = {}

    def channel(self, chat_id: str) -> ChatChannel:
        channel = self._channels.get(chat_id)
        if channel is None:
            channel = self._channels[chat_id] = ChatChannel()
        return channel

    def drop(self, chat_id: str) -> None:
        channel = self._channels.pop(chat_id, None)
        if channel is not None:
            channel.close()

    def close_all(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
