"""Reading, writing and editing workspace files. Blocking calls: run them in a worker thread."""

from __future__ import annotations

import difflib
import os
import secrets
import stat
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from workdock.agent.workspace.paths import os_error
from workdock.agent.workspace.text import utf8_prefix
from workdock.agentapi import EditFileResult, FileEdit, ReadFileResult, WriteFileResult
from workdock.http_errors import ApiError

READ_CAP_BYTES = 256 * 1024
"""Most content one read returns, so one answer never swamps a model's context."""

SNIFF_BYTES = 8000
"""A NUL byte within this many leading bytes marks a file as binary (git's rule)."""

_PIECE = 64 * 1024  # read lines in pieces of at most this much, so one huge line costs no more memory


def _open_regular(path: Path) -> tuple[int, os.stat_result]:
    """An fd open for reading, refused unless ``path`` is a regular file (a FIFO would block forever)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise os_error(exc, path) from exc
    if stat.S_ISDIR(info.st_mode):
        raise ApiError(400, "is a directory", f"{path} is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise ApiError(400, "not a regular file", f"{path} is a device, socket or pipe")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise os_error(exc, path) from exc
    return fd, info


def _refuse_binary(head: bytes, path: Path) -> None:
    if b"\0" in head:
        raise ApiError(400, "binary file", f"{path} holds binary data (a NUL byte), not text")


def _take_lines(file: BinaryIO, offset: int, limit: int) -> tuple[bytearray, int, bool, bool]:
    """Read up to line ``offset + limit``, keeping lines from ``offset`` on, at most READ_CAP_BYTES.

    Returns the kept bytes, the newlines read, whether the last byte read was not a newline, and
    whether a line was cut (only the first wanted line is ever cut: a later one that does not fit is
    left for the next read).
    """
    wanted = bytearray()
    line = 0
    ends_open = False
    line_began = 0
    while line < offset + limit and (piece := file.readline(_PIECE)):
        starts_line = not ends_open
        ends_open = not piece.endswith(b"\n")
        if line >= offset:
            if starts_line:
                line_began = len(wanted)
            if len(wanted) + len(piece) > READ_CAP_BYTES:
                cut = line == offset
                if cut:  # one line longer than the cap: its head rather than nothing
                    wanted += utf8_prefix(piece, READ_CAP_BYTES - len(wanted))
                else:
                    del wanted[line_began:]
                return wanted, line + (not ends_open), ends_open, cut
            wanted += piece
        line += not ends_open
    return wanted, line, ends_open, False


def read_file(path: Path, offset: int, limit: int) -> ReadFileResult:
    """Lines ``offset`` to ``offset + limit`` of a text file, at most READ_CAP_BYTES of them."""
    fd, info = _open_regular(path)
    with os.fdopen(fd, "rb") as file:
        _refuse_binary(file.read(SNIFF_BYTES), path)
        file.seek(0)
        wanted, newlines, ends_open, cut = _take_lines(file, offset, limit)
        # total_lines needs the whole file counted; big blocks make that cheap.
        while block := file.read(1 << 20):
            newlines += block.count(b"\n")
            ends_open = not block.endswith(b"\n")
    total_lines = newlines + ends_open
    taken = wanted.count(b"\n") + (bool(wanted) and not wanted.endswith(b"\n"))
    try:
        content, invalid = wanted.decode("utf-8"), False
    except UnicodeDecodeError:
        content, invalid = wanted.decode("utf-8", errors="replace"), True
    next_offset = offset + taken if offset + taken < total_lines else None
    return ReadFileResult(
        path=str(path),
        content=content,
        total_lines=total_lines,
        offset=offset,
        lines=taken,
        next_offset=next_offset,
        truncated=cut or next_offset is not None,
        invalid_utf8=invalid,
        size=info.st_size,
    )


# Writes and edits to one file are serialised, so two edits sent at once (a model's parallel tool
# calls) both land instead of the second silently undoing the first.
_locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
_locks_guard = threading.Lock()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with _locks_guard:
        lock = _locks.get(str(path))
        if lock is None:
            lock = threading.Lock()
            _locks[str(path)] = lock
    with lock:
        yield


def _target(path: Path) -> Path:
    """Where the bytes go: through a symlink to its target, so the link survives the rename."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _replace_atomically(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` via a temp file and a rename; True if the file is new."""
    try:
        existing: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise os_error(exc, path) from exc
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise ApiError(400, "is a directory", f"{path} is a directory, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise ApiError(400, "not a directory", f"a parent of {path} is a file") from exc
    except OSError as exc:
        raise os_error(exc, path.parent) from exc
    # Same directory, so the rename never crosses file systems. Mode 0666 lets the umask decide a new
    # file's mode, as for any other file the user makes.
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise os_error(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            if existing is not None:
                os.fchmod(file.fileno(), stat.S_IMODE(existing.st_mode))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise os_error(exc, path) from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return existing is None


def write_file(path: Path, content: str) -> WriteFileResult:
    target = _target(path)
    data = content.encode("utf-8")
    with _file_lock(target):
        created = _replace_atomically(target, data)
    return WriteFileResult(path=str(path), bytes_written=len(data), created=created)


def _line_numbers(text: str, needle: str) -> list[int]:
    """1-based line numbers where each non-overlapping occurrence of ``needle`` starts."""
    numbers, start = [], 0
    while (found := text.find(needle, start)) != -1:
        numbers.append(text.count("\n", 0, found) + 1)
        start = found + len(needle)
    return numbers


def _apply(text: str, edits: Sequence[FileEdit], path: Path) -> tuple[str, int]:
    """``text`` with every edit applied in order, or ApiError 409 naming the first that does not fit."""
    replacements = 0
    for number, edit in enumerate(edits, start=1):
        if edit.old == edit.new:
            raise ApiError(400, f"edit {number} changes nothing", "old and new are the same text")
        count = text.count(edit.old)
        if count == 1 or (count > 1 and edit.replace_all):
            text = text.replace(edit.old, edit.new)
            replacements += count
            continue
        which = f"edit {number} of {len(edits)}"
        if count == 0:
            raise ApiError(409, f"{which}: old text not found", f"0 matches in {path}; no edit was applied")
        lines = ", ".join(str(n) for n in _line_numbers(text, edit.old))
        raise ApiError(
            409,
            f"{which}: old text matches {count} times",
            f"{count} matches in {path} at lines {lines}; make old unique or set replace_all;"
            " no edit was applied",
        )
    return text, replacements


def edit_file(path: Path, edits: Sequence[FileEdit], display: str) -> EditFileResult:
    """Apply all ``edits`` or none; ``display`` names the file in the diff."""
    target = _target(path)
    with _file_lock(target):
        fd, _ = _open_regular(target)
        with os.fdopen(fd, "rb") as file:
            data = file.read()
        _refuse_binary(data[:SNIFF_BYTES], path)
        try:
            before = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            # Editing a decoded-with-replacement copy would write the replacements back: refuse.
            raise ApiError(400, "not UTF-8 text", f"{path}: {exc}; editing it would corrupt it") from exc
        after, replacements = _apply(before, edits, path)
        _replace_atomically(target, after.encode("utf-8"))
    diff = "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"a/{display}",
            tofile=f"b/{display}",
        )
    )
    return EditFileResult(path=str(path), diff=diff, replacements=replacements)
