"""The agents' recent statuses, so that a list of workspaces answers at once.

A status younger than ``fresh_s`` is served as it is. An older one is checked again (one check
per workspace at a time, with the check's own budget), and a list waits for the checks only
``wait_s``: an agent that answers by then is shown fresh, one that does not is shown as last seen,
with its age, while its check goes on and fills the cache for the next list. A workspace never
seen yet is worth waiting for: its check runs to its own budget.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Status = dict[str, Any]
Probe = Callable[[], Awaitable[Status]]

FRESH_S = 2.0
WAIT_S = 0.1
MAX_ENTRIES = 10_000  # one per workspace; the oldest go first past this


@dataclass(frozen=True)
class Seen:
    status: Status
    at: float  # time.time() when the agent gave it

    def shown(self) -> Status:
        """The status with when it was taken and how old it is now."""
        return {
            **self.status,
            "checked_at": datetime.fromtimestamp(self.at, UTC).isoformat(),
            "age_s": round(max(0.0, time.time() - self.at), 1),
        }


class StatusCache:
    def __init__(
        self, fresh_s: float = FRESH_S, wait_s: float = WAIT_S, max_entries: int = MAX_ENTRIES
    ) -> None:
        self.fresh_s = fresh_s
        self.wait_s = wait_s
        self.max_entries = max_entries
        self._seen: OrderedDict[str, Seen] = OrderedDict()
        self._checks: dict[str, asyncio.Task[Status]] = {}

    async def many(self, wanted: Sequence[tuple[str, Probe]]) -> list[Seen | None]:
        """The status of each (key, probe), checked at once where it is not fresh (None: none
        to show, as when a check failed)."""
        now = time.time()
        checks: dict[str, asyncio.Task[Status]] = {}
        for key, probe in wanted:
            seen = self._seen.get(key)
            if seen is None or now - seen.at >= self.fresh_s:
                checks[key] = self._check(key, probe)
        if checks:
            await asyncio.wait(checks.values(), timeout=self.wait_s)
            unseen = [task for key, task in checks.items() if key not in self._seen and not task.done()]
            if unseen:
                await asyncio.wait(unseen)
        return [self._seen.get(key) or _outcome(checks.get(key)) for key, _ in wanted]

    async def fresh(self, key: str, probe: Probe) -> Seen | None:
        """A status taken now (a check under way may have begun before a change: not joined)."""
        self._checks.pop(key, None)
        task = self._check(key, probe)
        await asyncio.wait([task])
        return self._seen.get(key) or _outcome(task)

    def last(self, key: str) -> Seen | None:
        """The status last seen, however old."""
        return self._seen.get(key)

    def __len__(self) -> int:
        return len(self._seen)

    def forget(self, key: str) -> None:
        """The agent's state changed through us (trusted, given input, refreshed, deleted)."""
        self._seen.pop(key, None)
        self._checks.pop(key, None)  # a check under way no longer counts

    async def aclose(self) -> None:
        checks = list(self._checks.values())
        self._checks.clear()
        for task in checks:
            task.cancel()
        await asyncio.gather(*checks, return_exceptions=True)

    def _check(self, key: str, probe: Probe) -> asyncio.Task[Status]:
        task = self._checks.get(key)
        if task is not None:
            return task

        async def run() -> Status:
            status = await probe()
            if self._checks.get(key) is task:  # not forgotten meanwhile
                self._seen[key] = Seen(status, time.time())
                self._seen.move_to_end(key)
                while len(self._seen) > self.max_entries:
                    self._seen.popitem(last=False)
            return status

        task = asyncio.get_running_loop().create_task(run())
        self._checks[key] = task
        task.add_done_callback(
            lambda done: self._checks.pop(key, None) if self._checks.get(key) is done else None
        )
        return task


def _outcome(task: asyncio.Task[Status] | None) -> Seen | None:
    """What a finished check that was not kept (forgotten meanwhile) still tells its caller."""
    if task is not None and task.done() and not task.cancelled() and task.exception() is None:
        return Seen(task.result(), time.time())
    return None
