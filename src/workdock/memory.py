"""Heap given back to the system after a large message passed through.

glibc's malloc keeps what a large result freed (in its arenas) for the next allocation, so a
process that once carried a 16 MB result stays that much bigger; ``malloc_trim`` returns the
free pages. It is called only after something large, where its cost (a scan of the heap, well
under a millisecond here) is nothing beside the transfer; bench/memory_bench.py measures both.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable

import psutil

LARGE_BYTES = 1024 * 1024
TRIM_DELAY_S = 0.5


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc.malloc_trim if libc is not None else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


_trim = _load_trim()
_pending = False  # a trim is scheduled


def give_back(nbytes: int) -> None:
    """After handling ``nbytes`` (a message, or growth of the process), return freed heap pages.

    The trim runs a moment later (one for many large messages): the message's last copies (the
    response in the socket's buffer, the caller's locals) are freed by then, and a trim that ran
    while they lived could not give their pages back.
    """
    global _pending
    if nbytes < LARGE_BYTES or _trim is None or _pending:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _trim(0)
        return
    _pending = True
    loop.call_later(TRIM_DELAY_S, _trim_now)


def _trim_now() -> None:
    global _pending
    _pending = False
    if _trim is not None:
        _trim(0)


def rss() -> int:
    """This process's resident memory, in bytes."""
    return int(psutil.Process().memory_info().rss)
