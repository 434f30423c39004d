"""Who runs a chat's turns: a lease on its row, taken by one atomic UPDATE, renewed by its holder,
free once it lapses (chat/scheduler.py decides when; this is the database side).

Times are the database's own on PostgreSQL (``now()``), so the replicas' clocks never decide who
holds a chat; SQLite serves one process, whose clock is the only one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, func, literal, or_, select, update
from sqlalchemy.engine import Connection

from workdock.chat import events
from workdock.chat.store.models import Chat, Message, QueuedMessage, UTCDateTime, utcnow
from workdock.chat.store.repo import LeaseLost, NewMessage, Store, _affected

# Event numbers a lease reserves: a replica that takes a chat over after a crash starts above
# every number the dead one can have shown a watcher (it used at most this many per lease period).
EVENT_BLOCK = 1_000_000
INTERRUPTED_CALL = "interrupted: the server running this turn stopped"
_LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Claim:
    chat_id: str
    status: str  # as the chat was when claimed: "running" means its turn was cut off
    first_seq: int  # the first event number the new holder uses


@dataclass(frozen=True)
class TakenOver:
    """What a takeover stored: the cut-off step's messages and the interrupted mark, and the
    tool calls that were in flight."""

    rows: list[Message]
    calls: list[dict[str, Any]]


class Leases:
    def __init__(self, store: Store, *, ttl: float) -> None:
        self.store = store
        self.ttl = timedelta(seconds=ttl)

    def _now(self, plus: timedelta | None = None) -> ColumnElement[datetime]:
        if self.store.postgres:
            return func.now() + plus if plus is not None else func.now()
        return literal(utcnow() + (plus or timedelta()), UTCDateTime())

    def _free(self) -> ColumnElement[bool]:
        return or_(Chat.lease_owner.is_(None), Chat.lease_expires_at < self._now())

    async def claim(self, owner: str, *, limit: int, exclude: Sequence[str] = ()) -> list[Claim]:
        """Take up to ``limit`` free chats that need a replica: messages wait, or a turn was cut off
        (a chat marked running whose lease is free has nobody running it)."""
        if limit <= 0:
            return []
        waiting = select(QueuedMessage.chat_id)
        candidates = (
            select(Chat.id)
            .where(self._free(), or_(Chat.id.in_(waiting), Chat.status == "running"))
            .order_by(Chat.updated_at)
            .limit(limit)
            # PostgreSQL: rows another replica is claiming right now are skipped, not waited for.
            .with_for_update(skip_locked=True)
        )
        if exclude:
            candidates = candidates.where(Chat.id.not_in(list(exclude)))
        statement = (
            update(Chat)
            .where(Chat.id.in_(candidates.scalar_subquery()), self._free())
            .values(
                lease_owner=owner,
                lease_expires_at=self._now(self.ttl),
                event_seq=Chat.event_seq + EVENT_BLOCK,
            )
            .returning(Chat.id, Chat.status, Chat.event_seq)
        )

        def run(connection: Connection) -> list[Claim]:
            return [
                Claim(row.id, row.status, row.event_seq - EVENT_BLOCK + 1)
                for row in connection.execute(statement)
            ]

        return await self.store.write(run)

    async def renew(self, owner: str) -> set[str]:
        """Extend every lease ``owner`` holds; the chats it still holds."""
        statement = (
            update(Chat)
            .where(Chat.lease_owner == owner)
            .values(lease_expires_at=self._now(self.ttl))
            .returning(Chat.id)
        )
        return set(await self.store.write(lambda c: list(c.execute(statement).scalars())))

    async def release(self, chat_id: str, owner: str, last_seq: int | None) -> bool:
        """Give the chat back, unless messages wait for it (False: it is still ours). ``last_seq``,
        the last event number used, returns the rest of the reserved block; None keeps it reserved
        (events may not all be stored). Raises ``LeaseLost`` when the chat is no longer ours."""
        values: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}
        if last_seq is not None:
            values["event_seq"] = last_seq
        waiting = exists().where(QueuedMessage.chat_id == chat_id)
        statement = (
            update(Chat).where(Chat.id == chat_id, Chat.lease_owner == owner, ~waiting).values(**values)
        )

        def run(connection: Connection) -> bool:
            if _affected(connection.execute(statement)):
                return True
            holder = connection.execute(select(Chat.lease_owner).where(Chat.id == chat_id)).first()
            if holder is None or holder.lease_owner != owner:
                raise LeaseLost(chat_id)
            return False

        return await self.store.write(run)

    async def expire(self, owners: Sequence[str] | None, *, keep: str) -> None:
        """Let the leases of ``owners`` (None: everyone but ``keep``) lapse now: they are earlier
        lives of this replica, whose turns died with them."""
        held = Chat.lease_owner.in_(list(owners)) if owners is not None else Chat.lease_owner != keep
        statement = update(Chat).where(held, Chat.lease_owner.is_not(None)).values(lease_expires_at=_LONG_AGO)
        await self.store.write(lambda c: c.execute(statement))

    async def record_calls(self, chat_id: str, owner: str, pending: dict[str, Any]) -> None:
        """Note the step whose tool calls are about to run (before they run)."""
        statement = (
            update(Chat).where(Chat.id == chat_id, Chat.lease_owner == owner).values(pending_step=pending)
        )

        def run(connection: Connection) -> None:
            if not _affected(connection.execute(statement)):
                raise LeaseLost(chat_id)

        await self.store.write(run)

    async def take_over(self, chat_id: str, owner: str) -> TakenOver:
        """The turn of a claimed chat was cut off (its replica died or stopped): store the step that
        was running with an error result for each call in flight (they never run again), then the
        interrupted mark, and mark the chat interrupted."""
        chat = await self.store.get_chat(chat_id)
        if chat is None or chat.lease_owner != owner:
            raise LeaseLost(chat_id)
        if chat.status != "running":
            return TakenOver([], [])
        messages: list[NewMessage] = []
        calls: list[dict[str, Any]] = []
        pending = chat.pending_step
        if pending:
            calls = list(pending.get("calls") or [])
            message = pending.get("message") or {}
            messages.append(
                NewMessage(
                    "assistant",
                    list(message.get("parts") or []),
                    model=message.get("model"),
                    usage=message.get("usage"),
                )
            )
            if calls:
                messages.append(NewMessage("tool", [interrupted_result(call) for call in calls]))
        messages.append(NewMessage("assistant", [events.interrupted_part("server")]))
        rows = await self.store.add_messages(chat_id, messages, status="interrupted", owner=owner)
        return TakenOver(rows, calls)

    async def set_status(self, chat_id: str, owner: str, status: str) -> None:
        statement = (
            update(Chat)
            .where(Chat.id == chat_id, Chat.lease_owner == owner)
            .values(status=status, updated_at=utcnow())
        )

        def run(connection: Connection) -> None:
            if not _affected(connection.execute(statement)):
                raise LeaseLost(chat_id)

        await self.store.write(run)

    async def request_interrupt(self, chat_id: str) -> int | None:
        """Ask whoever runs the chat's turn to stop it; the turn (its first event number), or None
        when no turn is running."""
        statement = (
            update(Chat)
            .where(Chat.id == chat_id, Chat.status == "running")
            .values(interrupt_turn=Chat.turn_seq)
            .returning(Chat.turn_seq)
        )
        rows = await self.store.write(lambda c: list(c.execute(statement).scalars()))
        return rows[0] if rows else None


def interrupted_result(call: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "tool-result",
        "tool_call_id": call.get("tool_call_id"),
        "tool_name": call.get("tool_name"),
        "is_error": True,
        "duration_ms": None,
        "content": [{"type": "text", "text": INTERRUPTED_CALL}],
    }
