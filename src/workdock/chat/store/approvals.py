"""Stored state of steps that wait for approval, and the answers to them (one transaction each).

A step with a call to approve is stored in two writes: its assistant message together with one
``StepCall`` row per call (``begin_wait``), then, once every call has a result, its tool message
together with the deletion of those rows (``finish_step``). In between, each row says where its
call stands, so a restarted server can take the step up again (``chat/turn.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from workdock.chat.store.models import Chat, Message, StepCall, utcnow
from workdock.chat.store.repo import LeaseLost, NewMessage, Store, _affected


@dataclass(frozen=True)
class WaitingCall:
    tool_call_id: str
    tool_name: str
    needs_approval: bool


class NotPending(Exception):
    """The call is not waiting for an answer (already answered, or not a call of the chat)."""

    def __init__(self, message: str, detail: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.status = status


async def _held(s: AsyncSession, chat_id: str, owner: str | None, **fields: Any) -> None:
    """Touch the chat in the write's transaction; with ``owner``, only while that replica holds
    its lease (else ``LeaseLost``, and the transaction stores nothing)."""
    held = (Chat.id == chat_id, Chat.lease_owner == owner) if owner is not None else (Chat.id == chat_id,)
    result = await s.execute(update(Chat).where(*held).values(updated_at=utcnow(), **fields))
    if owner is not None and not _affected(result):
        raise LeaseLost(chat_id)


class ApprovalStore:
    def __init__(self, store: Store) -> None:
        self.sessions = store.sessions

    async def begin_wait(
        self, chat_id: str, message: NewMessage, calls: Sequence[WaitingCall], *, owner: str | None = None
    ) -> Message:
        """Store the step's assistant message and its calls: those to approve ``pending``, the
        others ``running`` (they start now)."""
        now = utcnow()
        async with self.sessions.begin() as s:
            await _held(s, chat_id, owner, pending_step=None)
            row = Message(
                chat_id=chat_id,
                role=message.role,
                parts=message.parts,
                model=message.model,
                usage=message.usage,
                superseded=False,
                created_at=now,
            )
            s.add(row)
            await s.flush()
            s.add_all(
                StepCall(
                    chat_id=chat_id,
                    tool_call_id=call.tool_call_id,
                    message_id=row.id,
                    position=position,
                    tool_name=call.tool_name,
                    needs_approval=call.needs_approval,
                    state="pending" if call.needs_approval else "running",
                    created_at=now,
                )
                for position, call in enumerate(calls)
            )
        return row

    async def calls(self, chat_id: str) -> Sequence[StepCall]:
        async with self.sessions() as s:
            return (
                await s.scalars(
                    select(StepCall).where(StepCall.chat_id == chat_id).order_by(StepCall.position)
                )
            ).all()

    async def pending(self, chat_id: str) -> Sequence[StepCall]:
        async with self.sessions() as s:
            return (
                await s.scalars(
                    select(StepCall)
                    .where(StepCall.chat_id == chat_id, StepCall.state == "pending")
                    .order_by(StepCall.position)
                )
            ).all()

    async def set_state(
        self,
        chat_id: str,
        tool_call_id: str,
        state: str,
        *,
        result: dict[str, Any] | None = None,
        owner: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"state": state}
        if result is not None:
            values["result"] = result
        async with self.sessions.begin() as s:
            await _held(s, chat_id, owner)
            await s.execute(
                update(StepCall)
                .where(StepCall.chat_id == chat_id, StepCall.tool_call_id == tool_call_id)
                .values(**values)
            )

    async def answer(
        self, chat_id: str, tool_call_id: str, *, approve: bool, reason: str | None, always: bool
    ) -> list[str]:
        """Store the user's answer; the ids of the calls it answered. ``always`` (with an
        approval) allows the tool in the chat from now on and approves its other pending calls.
        Raises :class:`NotPending`."""
        async with self.sessions.begin() as s:
            row = await s.get(StepCall, (chat_id, tool_call_id))
            if row is None:
                raise NotPending(
                    "no such pending tool call", "the chat has no call with that id waiting", 404
                )
            if row.state != "pending":
                raise NotPending(
                    "this call was already answered", f"it is {row.state}; each call is answered once", 409
                )
            answered = [row]
            if approve and always:
                chat = await s.get(Chat, chat_id)
                if chat is not None and row.tool_name not in (chat.always_allow or []):
                    chat.always_allow = [*(chat.always_allow or []), row.tool_name]
                answered += (
                    await s.scalars(
                        select(StepCall).where(
                            StepCall.chat_id == chat_id,
                            StepCall.state == "pending",
                            StepCall.tool_name == row.tool_name,
                            StepCall.tool_call_id != tool_call_id,
                        )
                    )
                ).all()
            for call in answered:
                call.state = "approved" if approve else "denied"
                call.reason = reason if not approve else None
            return [call.tool_call_id for call in answered]

    async def finish_step(
        self, chat_id: str, messages: Sequence[NewMessage], *, status: str | None, owner: str | None = None
    ) -> list[Message]:
        """Store the step's tool message (and, for an interrupt, its mark) and drop its calls."""
        now = utcnow()
        async with self.sessions.begin() as s:
            await _held(s, chat_id, owner, **({"status": status} if status is not None else {}))
            rows = [
                Message(
                    chat_id=chat_id,
                    role=m.role,
                    parts=m.parts,
                    model=m.model,
                    usage=m.usage,
                    superseded=False,
                    created_at=now,
                )
                for m in messages
            ]
            s.add_all(rows)
            await s.execute(delete(StepCall).where(StepCall.chat_id == chat_id))
        return rows

    async def waiting_chats(self) -> list[str]:
        async with self.sessions() as s:
            return list((await s.scalars(select(StepCall.chat_id).distinct())).all())
