"""Approving tool calls before they run: the chat's policy, and the wake-ups of waiting turns.

A chat's policy is ``auto`` (every call runs), ``ask`` (calls of tools not marked read-only wait
for the user) or ``ask-all`` (every call waits). A tool the user allowed "always" in the chat
runs without asking. The waiting itself is stored (``StepCall`` rows, ``store/approvals.py``), so
it survives a restart; this module only decides who must ask, and wakes the turn that waits when
an answer is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from workdock.chat.store.approvals import ApprovalStore
from workdock.chat.store.models import StepCall
from workdock.chat.store.repo import Store
from workdock.chat.tools.base import OfferedTool

Policy = Literal["auto", "ask", "ask-all"]
POLICIES: tuple[str, ...] = get_args(Policy)
DEFAULT_POLICY: Policy = "auto"
DEFAULT_POLICY_SETTING = "default_approval_policy"


async def default_policy(store: Store) -> Policy:
    """The policy of a chat created without one: the admin's setting, ``auto`` out of the box."""
    value = await store.get_setting(DEFAULT_POLICY_SETTING, DEFAULT_POLICY)
    return value if value in POLICIES else DEFAULT_POLICY


@dataclass(frozen=True)
class ChatPolicy:
    policy: str
    always_allow: frozenset[str]

    @classmethod
    def of(cls, policy: str | None, always_allow: Iterable[str] | None) -> ChatPolicy:
        return cls(policy or DEFAULT_POLICY, frozenset(always_allow or ()))

    def asks(self, tool: OfferedTool | None) -> bool:
        """Whether a call of ``tool`` waits for the user. An unknown tool never runs, so it does
        not ask: the model is told at once that there is no such tool."""
        if tool is None or self.policy == "auto" or tool.name in self.always_allow:
            return False
        return self.policy == "ask-all" or not tool.read_only


class ApprovalWaiters:
    """Wakes the turn of a chat when an answer to one of its pending calls is stored.

    A turn that waits re-reads the stored calls after each wake-up; it holds no CPU while it
    waits (an ``asyncio.Event``, set by :meth:`wake`). The answer may be posted to any replica:
    it is stored there, and ``notify.CHAT`` has the replica running the turn call :meth:`wake`
    (``Scheduler._check``), as for an interrupt.
    """

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def event(self, chat_id: str) -> asyncio.Event:
        event = self._events.get(chat_id)
        if event is None:
            event = self._events[chat_id] = asyncio.Event()
        return event

    def wake(self, chat_id: str) -> None:
        event = self._events.pop(chat_id, None)
        if event is not None:
            event.set()

    async def wait_answer(self, store: ApprovalStore, chat_id: str, tool_call_id: str) -> StepCall:
        """Wait until the call is answered (the stored row says so); returns that row."""
        while True:
            event = self.event(chat_id)  # taken before the read: an answer after it still wakes us
            row = next((r for r in await store.calls(chat_id) if r.tool_call_id == tool_call_id), None)
            if row is None:
                raise LookupError(f"the call {tool_call_id} of chat {chat_id} is no longer stored")
            if row.state != "pending":
                return row
            await event.wait()

    def forget(self, chat_id: str) -> None:
        self._events.pop(chat_id, None)
