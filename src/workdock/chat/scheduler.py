"""Turn scheduling across the replicas: one turn at a time per chat, wherever it is posted.

A chat's turns run on the replica that holds its lease (store/leases.py). A posted message is
queued in the database and notifies ``QUEUE``; every replica's claimer then tries to take the chats
that wait and have no live lease (one atomic UPDATE: one wins), and a sweep every few seconds
catches what a lost notification or a lapsed lease left. The holder runs the chat's queue turn by
turn, renewing its leases, and gives the chat back when the queue is empty.

A replica that dies leaves its leases to lapse; whoever claims such a chat next finds it marked
running and takes it over: the cut-off step is stored with an error result for each call that was
in flight (those never run again), the turn is marked interrupted, and its queue runs. A start is
the same takeover, at once, of the chats this replica held in an earlier life.

SQLite serves one process: there the same code runs with in-process notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from workdock.chat import events, notify
from workdock.chat.eventlog import ChatChannel, EventLog
from workdock.chat.notify import Notifier
from workdock.chat.store.leases import INTERRUPTED_CALL, Claim, Leases
from workdock.chat.store.models import Chat, QueuedMessage
from workdock.chat.store.repo import LeaseLost, Store, TurnStart
from workdock.chat.tasks import spawn
from workdock.chat.turn import TurnEnd, TurnRunner

logger = logging.getLogger(__name__)

RETRY_FIRST_S = 1.0
RETRY_MAX_S = 30.0
FLUSH_WAIT_S = 5.0  # before giving a chat back, for its events to be stored
INTERRUPT_WAIT_S = 5.0  # an interrupt through another replica waits this long for the turn to end


@dataclass(frozen=True)
class SchedulerSettings:
    lease_s: float = 30.0  # a lease not renewed for this long is free
    renew_s: float = 5.0  # how often a holder renews (well inside the lease)
    sweep_s: float = 3.0  # how often a replica looks for work no notification announced
    max_turns: int = 256  # chats this replica runs at once (0: it runs none)


@dataclass(eq=False)
class _Held:
    """A chat this replica holds: its owner task, its channel and the turn running, if any."""

    claimed_at: float
    task: asyncio.Task[None] | None = None
    channel: ChatChannel | None = None
    turn: asyncio.Task[None] | None = None
    turn_seq: int = 0  # where the turn being started or running begins
    interrupt_asked: bool = False
    taken_over: asyncio.Event = field(default_factory=asyncio.Event)
    releasing: bool = False  # its lease is being given back (the renewer must not call it lost)


class Scheduler:
    def __init__(
        self,
        store: Store,
        runner: TurnRunner,
        log: EventLog,
        notifier: Notifier,
        replica_id: str,
        settings: SchedulerSettings | None = None,
        leases: Leases | None = None,
    ) -> None:
        self.store = store
        self.runner = runner
        self.log = log
        self.notifier = notifier
        self.me = replica_id
        self.settings = settings or SchedulerSettings()
        self.leases = leases or Leases(store, ttl=self.settings.lease_s)
        self._held: dict[str, _Held] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._loops: list[asyncio.Task[None]] = []
        # Chats whose turn is over but whose new status the database did not take (disk full,
        # read-only): shown from here, and written as soon as the database takes it.
        self._unsettled: dict[str, str] = {}
        notifier.listen(notify.QUEUE, lambda _: self._wake.set())
        notifier.listen(notify.CHAT, self._on_chat)

    # ---- what the API asks -----------------------------------------------------------------------

    def status(self, chat: Chat) -> str:
        """The chat's status: the stored one, unless a turn's end could not be stored yet."""
        return self._unsettled.get(chat.id, chat.status)

    def is_running(self, chat: Chat) -> bool:
        return self.status(chat) == "running"

    async def submit(
        self,
        chat_id: str,
        content: str,
        *,
        interrupt: bool = False,
        title: str | None = None,
        parts: list[dict[str, Any]] | None = None,
    ) -> QueuedMessage:
        """Queue a user message (``parts`` when it is more than ``content`` as text) and start it."""
        queued = await self.store.enqueue(chat_id, content, title=title, parts=parts)
        if interrupt:
            await self.interrupt(chat_id)
        await self._announce(chat_id)
        return queued

    async def retry(self, chat_id: str, content: str | None = None) -> QueuedMessage:
        """Re-run the last turn from its user message (``content``: that message edited; the
        messages it replaces are kept, superseded); refused with ``RerunRefused`` while a turn runs
        or messages wait."""
        queued = await self.store.enqueue_rerun(chat_id, content)
        await self._announce(chat_id)
        return queued

    async def _announce(self, chat_id: str) -> None:
        self._wake.set()  # this replica looks at once; the others when the notification comes
        await self.notifier.notify(notify.QUEUE, chat_id)

    async def interrupt(self, chat_id: str) -> bool:
        """Stop the running turn wherever it runs (its finished steps stay stored); True if one
        was running."""
        held = self._held.get(chat_id)
        if held is not None and held.turn is not None and not held.turn.done():
            held.turn.cancel()
            await asyncio.wait({held.turn})  # the turn stores its partial step before it ends
            return True
        turn = await self.leases.request_interrupt(chat_id)
        if turn is None:
            return False
        await self.notifier.notify(notify.CHAT, chat_id)
        deadline = time.monotonic() + INTERRUPT_WAIT_S
        while time.monotonic() < deadline:  # until the holder has stopped it (or the wait is over)
            chat = await self.store.get_chat(chat_id)
            if chat is None or chat.status != "running" or chat.turn_seq != turn:
                break
            await asyncio.sleep(0.05)
        return True

    async def answer(
        self, chat_id: str, tool_call_id: str, *, approve: bool, reason: str | None, always: bool
    ) -> list[str]:
        """Store the user's answer to a pending call and wake the turn that waits for it, wherever
        it runs (the ids of the calls answered; raises ``NotPending``). The answer is in the
        database; ``CHAT`` tells the holder to re-read it, as an interrupt does."""
        answered = await self.runner.approvals.answer(
            chat_id, tool_call_id, approve=approve, reason=reason, always=always
        )
        await self.notifier.notify(notify.CHAT, chat_id)
        return answered

    async def forget(self, chat_id: str) -> None:
        """The chat is being deleted: a turn of it that runs here stops first (it stores nothing
        more once the row is gone); the holder elsewhere learns it from ``CHAT``."""
        self.runner.history.forget(chat_id)
        held = self._held.get(chat_id)
        if held is not None and held.turn is not None and not held.turn.done():
            held.turn.cancel()
            await asyncio.wait({held.turn})

    # ---- start and stop --------------------------------------------------------------------------

    async def start(self, earlier_lives: Sequence[str] | None) -> None:
        """Take over at once the chats this replica held in an earlier life (``earlier_lives``: their
        replica ids; None: every other holder, for a database only this process uses), then run."""
        try:
            await self.leases.expire(earlier_lives, keep=self.me)
            claims = await self.leases.claim(self.me, limit=self._free())
        except Exception as exc:  # a database that refuses writes: the sweep tries again
            logger.error("cannot take over the chats of an earlier start yet: %r", exc)
            claims = []
        for claim in claims:
            self._hold(claim)
        waits = [h.taken_over.wait() for h in self._held.values()]
        if waits:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await asyncio.gather(*waits)
        loop = asyncio.get_running_loop()
        self._loops = [
            loop.create_task(self._claim_loop(), name="claimer"),
            loop.create_task(self._renew_loop(), name="lease renewer"),
        ]

    async def shutdown(self) -> None:
        self._stopping = True
        self._wake.set()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self.runner.stopping = True  # the turns cut off now were stopped by the server, not a user
        turns = [h.turn for h in self._held.values() if h.turn is not None and not h.turn.done()]
        for turn in turns:
            turn.cancel()
        owners = [h.task for h in self._held.values() if h.task is not None]
        if owners:
            # Each owner stores its turn's end, then gives its chat back for another replica.
            await asyncio.wait(owners, timeout=15)
        for task in owners:
            task.cancel()
        await asyncio.gather(*owners, return_exceptions=True)

    # ---- claiming and holding chats --------------------------------------------------------------

    def _free(self) -> int:
        return 0 if self._stopping else max(self.settings.max_turns - len(self._held), 0)

    async def _claim_loop(self) -> None:
        failing = False
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that arrives as the event is set, and this loop would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.sweep_s):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            free = self._free()
            if free == 0:
                continue
            try:
                claims = await self.leases.claim(self.me, limit=free, exclude=list(self._held))
            except Exception as exc:
                if not failing:
                    logger.error("cannot look for chats to run: %r", exc)
                failing = True
                continue
            failing = False
            for claim in claims:
                self._hold(claim)

    def _hold(self, claim: Claim) -> None:
        held = self._held[claim.chat_id] = _Held(claimed_at=time.monotonic())
        held.task = asyncio.get_running_loop().create_task(
            self._own(claim, held), name=f"chat {claim.chat_id}"
        )

    async def _renew_loop(self) -> None:
        renewed_at = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.renew_s)
            renewed_at = await self.renew(renewed_at)

    async def renew(self, renewed_at: float) -> float:
        """Renew this replica's leases once; stop the turns of chats it no longer holds. Returns
        when the leases were last renewed (``renewed_at`` if they could not be now)."""
        started = time.monotonic()
        try:
            still = await self.leases.renew(self.me)
        except Exception as exc:
            logger.error("cannot renew this replica's leases: %r", exc)
            if time.monotonic() - renewed_at > self.settings.lease_s:
                for chat_id in list(self._held):  # other replicas may hold them by now
                    self._lose(chat_id)
            return renewed_at
        for chat_id, held in list(self._held.items()):
            # A chat being given back is not ours in the database any more, rightly.
            if chat_id not in still and held.claimed_at < started and not held.releasing:
                self._lose(chat_id)
        return started

    def _lose(self, chat_id: str) -> None:
        """The chat is no longer ours: its turn stops and writes nothing more."""
        held = self._held.get(chat_id)
        if held is None:
            return
        logger.warning("chat %s: its lease was lost (another replica may run it now)", chat_id)
        if held.channel is not None:
            held.channel.lost = True
        if held.task is not None:
            held.task.cancel()
        if held.turn is not None:
            held.turn.cancel()

    def _on_chat(self, payload: str | None) -> None:
        chat_ids = list(self._held) if payload is None else [payload] if payload in self._held else []
        for chat_id in chat_ids:
            spawn(self._check(chat_id))

    async def _check(self, chat_id: str) -> None:
        """Someone asked something of a chat we hold: stop its turn if it was deleted or a user asked."""
        try:
            chat = await self.store.get_chat(chat_id)
        except Exception as exc:
            logger.warning("chat %s: cannot read it: %r", chat_id, exc)
            return
        held = self._held.get(chat_id)
        if held is None:
            return
        # A turn waiting for an approval re-reads its stored calls (an answer may be stored).
        self.runner.waiters.wake(chat_id)
        if chat is None or chat.lease_owner != self.me:
            self._lose(chat_id)
        elif chat.interrupt_turn == held.turn_seq and chat.status == "running":
            held.interrupt_asked = True  # a user interrupt: the turn stores what it has
            if held.turn is not None and not held.turn.done():
                held.turn.cancel()

    async def _own(self, claim: Claim, held: _Held) -> None:
        """Run the chat's queue while we hold it, then give it back."""
        chat_id = claim.chat_id
        channel: ChatChannel | None = None
        try:
            channel = held.channel = await self.log.open(chat_id, claim.first_seq)
            resume = await self.store.resume_turn(chat_id) if claim.status == "running" else None
            if claim.status == "running" and resume is None:
                await self._take_over(chat_id, channel)
            held.taken_over.set()
            if resume is not None:  # it waits for an approval: its state is stored, it goes on
                logger.info("chat %s: taking up a turn that waits for an approval", chat_id)
                chat = await self.store.get_chat(chat_id)
                # the turn keeps its first event number: an interrupt names the turn by it
                held.turn_seq = chat.turn_seq if chat is not None and chat.turn_seq else channel.next_seq
                # An interrupt asked while nobody held the chat (or before the number was set
                # here, which ``_check`` compares with) stops the turn as soon as it is taken up.
                chat = await self.store.get_chat(chat_id)
                held.interrupt_asked = chat is not None and chat.interrupt_turn == held.turn_seq
                await self._run_turn(chat_id, resume, channel, held)
            retry = RETRY_FIRST_S
            while not self._stopping:
                held.turn_seq, held.interrupt_asked = channel.next_seq, False
                try:
                    start = await self.store.start_next_turn(chat_id, owner=self.me, turn_seq=held.turn_seq)
                except LeaseLost:
                    raise
                except Exception as exc:  # the database cannot be written: the message stays queued
                    logger.error(
                        "chat %s: cannot start the next turn (retrying in %g s): %r", chat_id, retry, exc
                    )
                    await asyncio.sleep(retry)
                    retry = min(retry * 2, RETRY_MAX_S)
                    continue
                retry = RETRY_FIRST_S
                if start is None:
                    if await self._give_back(chat_id, channel):
                        return
                    continue
                await self._run_turn(chat_id, start, channel, held)
            await self._give_back(chat_id, channel)
        except LeaseLost:
            logger.warning("chat %s: another replica has it now, or it was deleted", chat_id)
        except asyncio.CancelledError:
            if channel is not None and not channel.lost:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._give_back(chat_id, channel, wait=False))
            raise
        except Exception:
            logger.exception("chat %s: its scheduling failed; the lease will lapse", chat_id)
        finally:
            held.taken_over.set()
            if channel is not None:
                channel.close()
            if self._held.get(chat_id) is held:
                del self._held[chat_id]

    async def _run_turn(self, chat_id: str, start: TurnStart, channel: ChatChannel, held: _Held) -> None:
        end = TurnEnd()
        turn = held.turn = asyncio.get_running_loop().create_task(
            self.runner.run(chat_id, start, channel, end), name=f"turn {chat_id}"
        )
        if held.interrupt_asked:  # asked for while the turn was being started (or nobody held it)
            # After the turn's first step: a task cancelled before it starts never runs, and
            # would not store what becomes of the turn.
            asyncio.get_running_loop().call_soon(turn.cancel)
        # wait() rather than await: an interrupted turn must not cancel its owner with it.
        await asyncio.wait({turn})
        held.turn = None
        if not turn.cancelled() and turn.exception() is not None:
            logger.error("chat %s: turn crashed", chat_id, exc_info=turn.exception())
        if end.lost or channel.lost:
            raise LeaseLost(chat_id)
        if not end.stored:
            await self._settle(chat_id, end.status)

    async def _take_over(self, chat_id: str, channel: ChatChannel) -> None:
        """The chat's turn was cut off where it ran: store and say so, in the same stream."""
        taken = await self.leases.take_over(chat_id, self.me)
        if not taken.rows:
            return
        logger.warning(
            "chat %s: took over a turn cut off by a stopped server (%d call(s) were in flight)",
            chat_id,
            len(taken.calls),
        )
        for call in taken.calls:
            channel.publish(events.tool_output_error(str(call.get("tool_call_id")), INTERRUPTED_CALL))
        for row in taken.rows:
            channel.publish(events.message(row))
        channel.publish(events.abort())
        channel.publish(events.status("interrupted"))

    async def _give_back(self, chat_id: str, channel: ChatChannel, *, wait: bool = True) -> bool:
        """Release the chat once its events are stored; False when messages wait (it stays ours)."""
        stored = await channel.flush(FLUSH_WAIT_S if wait else 1.0)
        held = self._held.get(chat_id)
        if held is not None:
            held.releasing = True  # until it leaves _held, once released
        released = False
        try:
            released = await self.leases.release(chat_id, self.me, channel.last_seq if stored else None)
        finally:
            if held is not None and not released:
                held.releasing = False
        if released and not self._stopping and await self.store.has_queue(chat_id):
            self._wake.set()  # queued while we let go: nobody else may have seen it free
        elif released and self._stopping and await self.store.has_queue(chat_id):
            await self.notifier.notify(notify.QUEUE, chat_id)  # for another replica
        return released

    async def _settle(self, chat_id: str, status: str) -> None:
        """Store the status a turn ended with, however long the database refuses writes: a chat
        is never left marked running when nothing runs."""
        self._unsettled[chat_id] = status
        retry = RETRY_FIRST_S
        try:
            while True:
                try:
                    await self.leases.set_status(chat_id, self.me, status)
                    return
                except LeaseLost:
                    raise
                except Exception as exc:
                    logger.error(
                        "chat %s: cannot store its status %r (retrying in %g s): %r",
                        chat_id,
                        status,
                        retry,
                        exc,
                    )
                await asyncio.sleep(retry)
                retry = min(retry * 2, RETRY_MAX_S)
        finally:
            self._unsettled.pop(chat_id, None)
