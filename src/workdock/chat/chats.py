"""Per-chat turn scheduling: one turn at a time, messages queued behind it, retries, interrupts.

Queued messages live in the database, so a restart keeps them; the worker for a chat takes the
oldest one, turns it into a history message and runs its turn, until the queue is empty. A retry
is a queued entry too: it re-runs the last turn from its user message.
"""

from __future__ import annotations

import asyncio
import logging

from workdock.chat.store.models import Chat, QueuedMessage
from workdock.chat.store.repo import RerunRefused, Store
from workdock.chat.turn import TurnEnd, TurnRunner

logger = logging.getLogger(__name__)

RETRY_FIRST_S = 1.0
RETRY_MAX_S = 30.0


class ChatManager:
    def __init__(self, store: Store, runner: TurnRunner) -> None:
        self.store = store
        self.runner = runner
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._turns: dict[str, asyncio.Task[None]] = {}
        self._kicked: set[str] = set()
        # Chats whose turn is over but whose new status the database did not take (disk full,
        # read-only): shown from here, and written as soon as the database takes it.
        self._unsettled: dict[str, str] = {}

    def status(self, chat: Chat) -> str:
        """The chat's status: the stored one, unless a turn's end could not be stored yet."""
        return self._unsettled.get(chat.id, chat.status)

    def is_running(self, chat_id: str) -> bool:
        turn = self._turns.get(chat_id)
        return turn is not None and not turn.done()

    async def submit(
        self, chat_id: str, content: str, *, interrupt: bool = False, title: str | None = None
    ) -> QueuedMessage:
        queued = await self.store.enqueue(chat_id, content, title=title)
        if interrupt:
            await self.interrupt(chat_id)
        self.kick(chat_id)
        return queued

    async def retry(self, chat_id: str, content: str | None = None) -> QueuedMessage:
        """Re-run the last turn from its user message (``content``: that message edited): the
        messages it replaces are kept in the history, superseded (the model no longer sees them).
        Refused with ``RerunRefused`` while a turn runs or messages wait."""
        if self.is_running(chat_id):
            raise RerunRefused(
                "a turn is running",
                "a retry re-runs the last turn once it has ended: wait for it, or stop it first",
            )
        queued = await self.store.enqueue_rerun(chat_id, content)
        self.kick(chat_id)
        return queued

    def kick(self, chat_id: str) -> None:
        """Make sure a worker will look at the chat's queue."""
        self._kicked.add(chat_id)
        worker = self._workers.get(chat_id)
        if worker is None or worker.done():
            self._workers[chat_id] = asyncio.create_task(self._work(chat_id), name=f"chat {chat_id}")

    async def interrupt(self, chat_id: str) -> bool:
        """Stop the running turn (its finished steps stay stored); True if one was running."""
        turn = self._turns.get(chat_id)
        if turn is None or turn.done():
            return False
        turn.cancel()
        await asyncio.wait({turn})  # the turn stores its partial step before it ends
        return True

    async def _work(self, chat_id: str) -> None:
        retry = RETRY_FIRST_S
        while True:
            self._kicked.discard(chat_id)
            try:
                start = await self.store.start_next_turn(chat_id)
            except Exception as exc:  # the database cannot be written: the message stays queued
                logger.error(
                    "chat %s: cannot start the next turn (retrying in %g s): %r", chat_id, retry, exc
                )
                await asyncio.sleep(retry)
                retry = min(retry * 2, RETRY_MAX_S)
                continue
            retry = RETRY_FIRST_S
            if start is None:
                if chat_id in self._kicked:  # a message came in while we looked
                    continue
                return
            end = TurnEnd()
            turn = asyncio.create_task(self.runner.run(chat_id, start, end), name=f"turn {chat_id}")
            self._turns[chat_id] = turn
            # wait() rather than await: an interrupted turn must not cancel the worker with it.
            await asyncio.wait({turn})
            self._turns.pop(chat_id, None)
            if not turn.cancelled() and turn.exception() is not None:
                logger.error("chat %s: turn crashed", chat_id, exc_info=turn.exception())
            if not end.stored:
                await self._settle(chat_id, end.status)

    async def _settle(self, chat_id: str, status: str) -> None:
        """Store the status a turn ended with, however long the database refuses writes: a chat
        is never left marked running when nothing runs."""
        self._unsettled[chat_id] = status
        retry = RETRY_FIRST_S
        try:
            while True:
                try:
                    await self.store.update_chat(chat_id, status=status)
                    return
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

    async def forget(self, chat_id: str) -> None:
        """The chat was deleted: stop its worker and turn."""
        worker = self._workers.pop(chat_id, None)
        await self.interrupt(chat_id)
        if worker is not None:
            worker.cancel()
            await asyncio.wait({worker})

    async def recover(self) -> None:
        """On start: turns cut off by a restart are marked interrupted; queued messages get their turns."""
        interrupted = await self.store.interrupt_running_chats()
        if interrupted:
            logger.warning(
                "marked %d chat(s) interrupted: the server stopped during their turn", len(interrupted)
            )
        for chat_id in await self.store.chats_with_queue():
            self.kick(chat_id)

    async def shutdown(self) -> None:
        workers = list(self._workers.values())
        turns = [t for t in self._turns.values() if not t.done()]
        self.runner.stopping = True  # the turns cut off now were stopped by the server, not a user
        for turn in turns:
            turn.cancel()
        if turns:
            await asyncio.wait(turns, timeout=10)
        for worker in workers:
            worker.cancel()
        if workers:
            await asyncio.wait(workers, timeout=5)
        self._workers.clear()
