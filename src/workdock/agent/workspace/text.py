"""Cutting UTF-8 bytes without splitting a character."""

from __future__ import annotations


def _sequence_length(lead: int) -> int:
    """Bytes in the UTF-8 sequence that starts with ``lead`` (1 for anything that cannot start one)."""
    if lead >> 5 == 0b110:
        return 2
    if lead >> 4 == 0b1110:
        return 3
    if lead >> 3 == 0b11110:
        return 4
    return 1


def utf8_prefix(data: bytes | bytearray, size: int) -> bytes:
    """At most ``size`` leading bytes of ``data``, not ending inside a character.

    A character cut by the end of ``data`` itself is dropped too: more of it may be on its way.
    """
    cut = min(size, len(data))
    # Step back over continuation bytes to the start of the sequence the cut falls in; drop it if the
    # cut splits it.
    start = cut
    while start > 0 and cut - start < 3 and data[start - 1] & 0xC0 == 0x80:
        start -= 1
    if start > 0 and start - 1 + _sequence_length(data[start - 1]) > cut:
        return bytes(data[: start - 1])
    return bytes(data[:cut])


def skip_partial_start(data: bytes | bytearray) -> int:
    """How many leading bytes of ``data`` are the tail of a character cut off before it (0 to 3)."""
    skip = 0
    while skip < min(3, len(data)) and data[skip] & 0xC0 == 0x80:
        skip += 1
    return skip
