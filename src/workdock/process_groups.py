"""Process groups: every stdio server and every command runs in its own, and ending one ends the group.

Ending the group, not just the process we started, is what reaches the grandchildren (``npm`` under
``sh``, the server an ``npx``/``uvx`` wrapper starts, a job started with ``&``) that would otherwise
outlive it and the agent.
"""

from __future__ import annotations

import logging
import os
import signal
import time

import anyio

log = logging.getLogger(__name__)

KILL_WAIT = 2.0
"""How long to wait for a group to vanish after SIGKILL before giving up on it (and logging so)."""

_POLL = 0.02


def signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to the group; False if no process of it is left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def _has_live_member(pgid: int) -> bool:
    """Whether a process of the group is alive, zombies not counted.

    A member whose parent is gone is reparented and stays a zombie until the new parent reaps it,
    which can take a while (some container inits reap every few seconds); it runs no code, so it
    must not make us wait or escalate to SIGKILL. On Linux /proc tells zombies apart; elsewhere
    any member counts.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        entries = os.scandir("/proc")
    except OSError:
        return True
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as file:
                    stat = file.read()
            except OSError:
                continue  # gone meanwhile
            # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
            fields = stat[stat.rfind(b")") + 2 :].split()
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
                return True
    return False


async def _wait_gone(pgid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while await anyio.to_thread.run_sync(_has_live_member, pgid):
        if time.monotonic() >= deadline:
            return False
        await anyio.sleep(_POLL)
    return True


async def end_group(pgid: int, grace: float) -> None:
    """SIGTERM the group, SIGKILL whatever is left after ``grace`` seconds, and wait for it to go."""
    if not await anyio.to_thread.run_sync(_has_live_member, pgid):
        return
    signal_group(pgid, signal.SIGTERM)
    if await _wait_gone(pgid, grace):
        return
    signal_group(pgid, signal.SIGKILL)
    if not await _wait_gone(pgid, KILL_WAIT):
        log.warning("process group %d still has live processes after SIGKILL", pgid)
