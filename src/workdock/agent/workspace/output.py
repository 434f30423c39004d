"""A process's output kept in bounded memory: its first bytes and its last bytes."""

from __future__ import annotations

from workdock.agent.workspace.text import skip_partial_start, utf8_prefix


class OutputBuffer:
    """The first ``head`` bytes and the last ``tail`` bytes of a stream, with positions in the whole.

    A command that prints gigabytes costs ``head + tail`` bytes; what is in between is counted, not
    kept. The head holds how a command started (the error that explains the rest), the tail how it
    ended.
    """

    def __init__(self, head: int, tail: int) -> None:
        self._head_cap = head
        self._tail_cap = tail
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def write(self, data: bytes) -> None:
        self.total += len(data)
        room = self._head_cap - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            excess = len(self._tail) - self._tail_cap
            if excess > 0:
                del self._tail[:excess]  # cheap: bytearray drops from the front without copying

    @property
    def _tail_start(self) -> int:
        return self.total - len(self._tail)

    def read(self, start: int, size: int) -> tuple[int, bytes]:
        """Up to ``size`` bytes from position ``start``, or from the first kept position after it.

        Returns the position the bytes start at; it is past ``start`` when that part was not kept.
        """
        start = min(max(start, 0), self.total)
        head_end = len(self._head)
        if start < head_end:
            data = bytes(self._head[start : start + size])
            if len(data) < size and self._tail_start == head_end:  # head and tail are contiguous
                data += self._tail[: size - len(data)]
            return start, data
        start = max(start, self._tail_start)
        offset = start - self._tail_start
        return start, bytes(self._tail[offset : offset + size])

    def render(self) -> tuple[str, bool]:
        """All the output as text, with a marker where the middle was cut; True if it was."""
        if self._tail_start <= len(self._head):
            return (bytes(self._head) + bytes(self._tail)).decode("utf-8", errors="replace"), False
        head = utf8_prefix(self._head, len(self._head))
        tail = bytes(self._tail[skip_partial_start(self._tail) :])
        cut = self.total - len(head) - len(tail)
        marker = f"\n[... {cut} bytes of output cut ...]\n"
        return head.decode("utf-8", errors="replace") + marker + tail.decode("utf-8", errors="replace"), True
