"""A chat's stream events: numbered by the replica running its turn, stored for the other replicas
and for watchers that come back later, delivered from memory where the turn runs.

- The turn publishes through a :class:`ChatChannel` (``publish(chunk)``, synchronous): the event
  gets the chat's next number, reaches this replica's watchers at once and is queued for the
  database. A flusher stores what is queued in batches (a streaming model must not cost a round trip
  per token), then notifies ``EVENTS`` with each chat's last stored number.
- Each replica keeps a *feed* per chat it runs or someone watches on it: the events after some
  number, in memory. The owner's publishes go into it; elsewhere a notification makes the feed read
  the rows after its last one (one read per replica, however many watch).
- The event id is the number. A lease reserves a block of them, so a replica that takes a chat over
  after a crash continues above anything the dead one may have shown a watcher: ``Last-Event-ID``
  from a dead replica resumes on any other one and misses nothing that was stored.
- An id the chat does not have (beyond its numbers, before the previous turn, or the ``<boot>-<seq>``
  form of earlier versions) gets the whole current turn instead, as a reconnect after a restart did.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

from workdock.chat import notify
from workdock.chat.events import Chunk
from workdock.chat.notify import Notifier
from workdock.chat.store.events import EventRows
from workdock.chat.store.models import Chat
from workdock.chat.store.repo import Store
from workdock.chat.tasks import spawn

logger = logging.getLogger(__name__)

FLUSH_DELAY_S = 0.004  # events published within this long go in one batch
FLUSH_BATCH = 1000
MAX_PENDING = 50_000  # queued for the database while it refuses writes; newer ones are not stored
FEED_EVENTS = 2000  # a feed keeps at most this many events in memory ...
FEED_BYTES = 8 * 1024 * 1024  # ... and this many bytes; older ones are read from the database
REPLAY_BATCH = 500


@dataclass(slots=True)
class Event:
    seq: int
    data: bytes  # the JSON payload, encoded once however many watchers there are

    @property
    def id(self) -> str:
        return str(self.seq)


def parse_id(text: str | None) -> int | None:
    """The number of an event id, or None when it is not one of ours."""
    if text and text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return None


class _Feed:
    """The events of one chat after ``base`` that this replica knows of (every one of them)."""

    def __init__(self, chat_id: str) -> None:
        self.chat_id = chat_id
        self.events: list[Event] = []
        self.bytes = 0
        self.base = 0
        self.ready = asyncio.Event()  # ``base`` is known
        self.users = 0  # watchers, and the owner's channel
        self.channel: ChatChannel | None = None
        self.dirty = False  # rows were announced that are not read yet
        self.reader: asyncio.Task[None] | None = None
        self.closed = False
        self._changed = asyncio.Event()

    @property
    def last(self) -> int:
        return self.events[-1].seq if self.events else self.base

    @property
    def changed(self) -> asyncio.Event:
        return self._changed

    def append(self, event: Event, flushed: int) -> None:
        if event.seq <= self.last:
            return  # known already
        self.events.append(event)
        self.bytes += len(event.data)
        # Bounded: the oldest stored events go (a watcher that needs them reads them back).
        while (len(self.events) > FEED_EVENTS or self.bytes > FEED_BYTES) and self.events[0].seq <= flushed:
            gone = self.events.pop(0)
            self.bytes -= len(gone.data)
            self.base = gone.seq
        self.wake()

    def after(self, seq: int) -> Event | None:
        index = bisect.bisect_right(self.events, seq, key=lambda e: e.seq)
        return self.events[index] if index < len(self.events) else None

    def wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def close(self) -> None:
        self.closed = True
        self.wake()


class ChatChannel:
    """The events of the chat this replica runs, as it publishes them: ``publish`` is the one call
    a turn makes. Opened when the replica takes the chat's lease, closed when it gives it back."""

    def __init__(self, log: EventLog, feed: _Feed, next_seq: int) -> None:
        self._log = log
        self._feed = feed
        self.chat_id = feed.chat_id
        self.next_seq = next_seq
        self.lost = False  # another replica has the chat now: nothing more of ours is shown or stored

    def publish(self, chunk: Chunk) -> Event:
        event = Event(self.next_seq, orjson.dumps(chunk))
        if self.lost or self._feed.closed:
            return event
        self.next_seq += 1
        self._feed.append(event, self._log.flushed_seq(self.chat_id))
        self._log._queue(self.chat_id, event)
        return event

    @property
    def last_seq(self) -> int:
        return self.next_seq - 1

    async def flush(self, timeout: float) -> bool:
        """Wait until every event published here is stored; False if that took too long."""
        return await self._log._stored(self.chat_id, self.last_seq, timeout)

    def close(self) -> None:
        if self._feed.channel is self:
            self._feed.channel = None
            self._log._release(self._feed)


class EventLog:
    def __init__(self, store: Store, notifier: Notifier) -> None:
        self.store = store
        self.rows = EventRows(store)
        self.notifier = notifier
        self._feeds: dict[str, _Feed] = {}
        self._pending: list[tuple[str, Event]] = []
        self._flushed: dict[str, int] = {}  # chat → its last stored seq (chats with an open channel)
        self._stored_cond = asyncio.Condition()
        self._flusher: asyncio.Task[None] | None = None
        self._warned_at = 0.0
        notifier.listen(notify.EVENTS, self._on_events)
        notifier.listen(notify.CHAT, self._on_chat)

    # ---- the owner's side ------------------------------------------------------------------------

    async def open(self, chat_id: str, next_seq: int) -> ChatChannel:
        """The channel the chat's new lease holder publishes on, from ``next_seq``."""
        feed = await self._acquire(chat_id)
        # What the previous holder stored and this feed has not read yet comes first.
        feed.dirty = True
        await self._read(feed)
        channel = ChatChannel(self, feed, next_seq)
        feed.channel = channel
        self._flushed[chat_id] = feed.last
        return channel

    def flushed_seq(self, chat_id: str) -> int:
        return self._flushed.get(chat_id, 0)

    def _queue(self, chat_id: str, event: Event) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._warn(f"{MAX_PENDING} events wait for the database; newer ones are not stored")
            return
        self._pending.append((chat_id, event))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush(), name="event flusher")

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(FLUSH_DELAY_S)
            retry = 0.05
            while self._pending:
                batch = self._pending[:FLUSH_BATCH]
                try:
                    gone = await self.rows.insert([(c, e.seq, e.data.decode()) for c, e in batch])
                except Exception as exc:  # the database refuses writes: keep them, try again
                    self._warn(f"events cannot be stored yet (retrying): {exc!r}")
                    await asyncio.sleep(retry)
                    retry = min(retry * 2, 5.0)
                    continue
                retry = 0.05
                del self._pending[: len(batch)]
                last: dict[str, int] = {}
                for chat_id, event in batch:
                    last[chat_id] = event.seq
                for chat_id in gone:  # deleted: nothing more of it is stored
                    last.pop(chat_id, None)
                    self._pending = [(c, e) for c, e in self._pending if c != chat_id]
                for chat_id, seq in last.items():
                    if chat_id in self._flushed:
                        self._flushed[chat_id] = max(self._flushed[chat_id], seq)
                async with self._stored_cond:
                    self._stored_cond.notify_all()
                await self._announce(last)
        finally:
            self._flusher = None

    async def _announce(self, last: dict[str, int]) -> None:
        payload = ""
        for chat_id, seq in last.items():
            item = f"{chat_id}:{seq}"
            if payload and len(payload) + len(item) + 1 > notify.MAX_PAYLOAD:
                await self.notifier.notify(notify.EVENTS, payload)
                payload = ""
            payload = f"{payload},{item}" if payload else item
        if payload:
            await self.notifier.notify(notify.EVENTS, payload)

    async def _stored(self, chat_id: str, seq: int, timeout: float) -> bool:
        async with self._stored_cond:
            try:
                async with asyncio.timeout(timeout):
                    await self._stored_cond.wait_for(lambda: self._flushed.get(chat_id, seq) >= seq)
                return True
            except TimeoutError:
                return False

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned_at > 10:
            self._warned_at = now
            logger.warning(message)

    # ---- watchers --------------------------------------------------------------------------------

    async def start_point(self, chat: Chat, last_event_id: str | None, running: bool) -> tuple[int, bool]:
        """Where a watcher begins: the number after which it gets events, and whether it first needs
        the chat's status (a newcomer to a chat where nothing runs)."""
        feed = self._feeds.get(chat.id)
        here = feed.last if feed is not None and feed.ready.is_set() else 0
        current_turn = max(chat.turn_seq - 1, 0)
        if last_event_id is not None:
            seen = parse_id(last_event_id)
            # Up to the block the chat's holder reserved: a watcher may have had events from a
            # holder that died before storing them.
            if seen is not None and seen <= max(chat.event_seq, here):
                first, _ = await self.rows.bounds(chat.id)
                if first is None or seen >= first - 1:
                    return seen, False
            return current_turn, False  # not an id we can resume after: the whole current turn
        if running:
            return current_turn, False
        # A newcomer to a chat where nothing runs: after the last event there is (not the reserved
        # block: the chat's next turn may start right after its holder's last event).
        _, last = await self.rows.bounds(chat.id)
        # A turn that started since ``chat`` was read may have published at or below ``last``
        # already (its start is stored before its first event): the newcomer gets that whole turn.
        fresh = await self.store.get_chat(chat.id)
        if fresh is not None and fresh.turn_seq != chat.turn_seq:
            return max(fresh.turn_seq - 1, 0), False
        return max(last or 0, here), True

    async def watch(self, chat_id: str, after: int) -> AsyncIterator[Event]:
        """The chat's events after number ``after``: stored ones first, then live ones, until the
        chat is deleted or the server stops."""
        feed = await self._acquire(chat_id)
        try:
            seen = after
            while not feed.closed:
                changed = feed.changed
                if seen < feed.base:  # older than what memory holds: from the database
                    rows = await self.rows.read(chat_id, seen, upto=feed.base, limit=REPLAY_BATCH)
                    for seq, data in rows:
                        yield Event(seq, data.encode())
                        seen = seq
                    if len(rows) < REPLAY_BATCH:
                        seen = max(seen, feed.base)
                    continue
                event = feed.after(seen)
                while event is not None:
                    yield event
                    seen = event.seq
                    event = feed.after(seen)
                await changed.wait()
        finally:
            self._release(feed)

    async def _acquire(self, chat_id: str) -> _Feed:
        feed = self._feeds.get(chat_id)
        if feed is not None and not feed.closed:
            feed.users += 1
            await feed.ready.wait()
            return feed
        feed = self._feeds[chat_id] = _Feed(chat_id)
        feed.users += 1
        try:
            _, last = await self.rows.bounds(chat_id)
        except BaseException:
            self._release(feed)
            raise
        feed.base = last or 0
        feed.ready.set()
        if feed.dirty:  # announced while we looked
            self._read_soon(feed)
        return feed

    def _release(self, feed: _Feed) -> None:
        feed.users -= 1
        if feed.users <= 0 and feed.channel is None:
            if self._feeds.get(feed.chat_id) is feed:
                del self._feeds[feed.chat_id]
            self._flushed.pop(feed.chat_id, None)
            if feed.reader is not None:
                feed.reader.cancel()

    # ---- what other replicas stored ---------------------------------------------------------------

    def _on_events(self, payload: str | None) -> None:
        if payload is None:  # notifications were missed: every feed reads what it lacks
            for feed in self._feeds.values():
                self._mark(feed)
            return
        for item in payload.split(","):
            chat_id, _, _ = item.partition(":")
            watched = self._feeds.get(chat_id)
            if watched is not None:
                self._mark(watched)

    def _mark(self, feed: _Feed) -> None:
        if feed.channel is not None:
            return  # the events are ours
        feed.dirty = True
        if feed.ready.is_set():
            self._read_soon(feed)

    def _read_soon(self, feed: _Feed) -> None:
        if feed.reader is None or feed.reader.done():
            feed.reader = asyncio.get_running_loop().create_task(self._read_logged(feed))

    async def _read_logged(self, feed: _Feed) -> None:
        try:
            await self._read(feed)
        except Exception as exc:
            logger.warning("chat %s: cannot read its events: %r", feed.chat_id, exc)

    async def _read(self, feed: _Feed) -> None:
        """Append the rows after the feed's last event, until none is left unread."""
        while feed.dirty and not feed.closed:
            feed.dirty = False
            while True:
                rows = await self.rows.read(feed.chat_id, feed.last, limit=REPLAY_BATCH)
                for seq, data in rows:
                    feed.append(Event(seq, data.encode()), seq)
                if len(rows) < REPLAY_BATCH:
                    break

    def _on_chat(self, payload: str | None) -> None:
        """A chat's row changed: a watched chat that was deleted ends its watchers' streams."""
        chat_ids = list(self._feeds) if payload is None else [payload] if payload in self._feeds else []
        for chat_id in chat_ids:
            spawn(self._drop_if_deleted(chat_id))

    async def _drop_if_deleted(self, chat_id: str) -> None:
        with contextlib.suppress(Exception):
            if await self.store.get_chat(chat_id) is None:
                self.drop(chat_id)

    def drop(self, chat_id: str) -> None:
        """The chat was deleted: its watchers' streams end, its queued events go."""
        feed = self._feeds.pop(chat_id, None)
        if feed is not None:
            feed.close()
        self._pending = [(c, e) for c, e in self._pending if c != chat_id]
        self._flushed.pop(chat_id, None)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Shutdown: watchers' streams end; what is queued is stored if the database lets us."""
        for feed in list(self._feeds.values()):
            feed.close()
        self._feeds.clear()
        flusher = self._flusher
        if flusher is not None:
            done, _ = await asyncio.wait({flusher}, timeout=timeout)
            if not done:
                flusher.cancel()
                await asyncio.gather(flusher, return_exceptions=True)
