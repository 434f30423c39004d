"""Bounded output buffers and cutting UTF-8 between characters."""

from __future__ import annotations

from workdock.agent.workspace.output import OutputBuffer
from workdock.agent.workspace.text import skip_partial_start, utf8_prefix

SAMPLE = "aé€😀b".encode()  # characters of 1, 2, 3, 4 and 1 bytes


def test_utf8_prefix_never_ends_inside_a_character() -> None:
    boundaries = {0, 1, 3, 6, 10, 11}
    for size in range(len(SAMPLE) + 2):
        prefix = utf8_prefix(SAMPLE, size)
        prefix.decode("utf-8")  # raises if a character was split
        assert len(prefix) == max(b for b in boundaries if b <= size)


def test_utf8_prefix_drops_a_character_cut_by_the_end_of_the_data() -> None:
    assert utf8_prefix(SAMPLE[:8], 8) == "aé€".encode()


def test_skip_partial_start() -> None:
    assert [skip_partial_start(SAMPLE[i:]) for i in range(len(SAMPLE))] == [0, 0, 1, 0, 2, 1, 0, 3, 2, 1, 0]


def test_buffer_keeps_head_and_tail_and_counts_the_rest() -> None:
    buffer = OutputBuffer(head=4, tail=4)
    for piece in (b"abc", b"defgh", b"ijklm"):
        buffer.write(piece)
    assert buffer.total == 13
    assert buffer.read(0, 100) == (0, b"abcd")
    assert buffer.read(5, 100) == (9, b"jklm")  # 4..8 was not kept: answered from the tail's start
    assert buffer.read(11, 1) == (11, b"l")
    assert buffer.read(99, 10) == (13, b"")
    assert buffer.render() == ("abcd\n[... 5 bytes of output cut ...]\njklm", True)


def test_buffer_reads_across_head_and_tail_while_nothing_is_cut() -> None:
    buffer = OutputBuffer(head=4, tail=8)
    buffer.write(b"0123456789")
    assert buffer.read(2, 5) == (2, b"23456")
    assert buffer.render() == ("0123456789", False)
