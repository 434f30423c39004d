"""SQLite serves exactly one chat server process. An exclusive lock on a file beside the database,
held for the process's life, makes a second server on the same file refuse to start, saying which
process holds it and that PostgreSQL is the way to run more than one.

The lock is ``flock`` on ``<database>.lock``: the kernel drops it when the process ends however it
ends, so a crash never leaves the database locked. The file holds the holder's pid and command
line, for the message.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


class DatabaseInUse(Exception):
    """Another process serves this SQLite database."""


def _command_line(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or None


class SqliteLock:
    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Hold the lock, or raise ``DatabaseInUse`` naming the process that holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES):  # a read-only database: nothing to guard
                logger.warning(
                    "cannot create %s (%s): a second server on this database is not refused",
                    self.path,
                    exc.strerror,
                )
                return
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace")
            os.close(fd)
            raise DatabaseInUse(self._refusal(holder)) from None
        os.ftruncate(fd, 0)
        command = _command_line(os.getpid()) or " ".join(sys.argv)
        os.pwrite(fd, f"{os.getpid()}\n{command}\n".encode(), 0)
        self._fd = fd

    def _refusal(self, holder: str) -> str:
        pid_text, _, recorded = holder.partition("\n")
        who = "another process"
        if pid_text.strip().isdigit():
            pid = int(pid_text)
            command = _command_line(pid) or recorded.strip()
            who = f"process {pid}" + (f" ({command})" if command else "")
        return (
            f"the SQLite database {self.database} is in use by {who}: SQLite serves one workdock "
            f"server. Stop that one, or run several servers on one PostgreSQL database "
            f"(--database-url postgresql://…)"
        )

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing drops the lock
            self._fd = None
