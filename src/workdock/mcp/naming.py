"""Offered tool names: ``<server>__<tool>``, always ``^[A-Za-z0-9_-]{1,64}$`` and unique.

LLM APIs refuse names with ``.``/``:`` or over 64 characters, and a catalog
must never offer one name twice. Calls are routed by looking the offered name
up in the table built here, never by splitting the string.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_LENGTH = 64
SEPARATOR = "__"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def sanitize(name: str) -> str:
    """Replace every character an LLM API would refuse with ``_``."""
    return _UNSAFE.sub("_", name) or "_"


def stable_hash(identity: str, length: int = 6) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()[:length]


def with_suffix(name: str, identity: str) -> str:
    """``name`` cut so that ``_<hash of identity>`` fits within the length limit."""
    suffix = "_" + stable_hash(identity)
    return name[: MAX_LENGTH - len(suffix)] + suffix


def fit(name: str, identity: str) -> str:
    """``name`` if short enough, else shortened with a stable hash suffix of ``identity``."""
    return name if len(name) <= MAX_LENGTH else with_suffix(name, identity)


def claim(name: str, identity: str, taken: set[str]) -> str:
    """``name`` made LLM-safe and unique against ``taken`` (a stable hash suffix when needed); claims it."""
    offered = fit(sanitize(name), identity)
    attempt = 0
    while offered in taken:
        attempt += 1
        offered = with_suffix(sanitize(name), f"{identity}#{attempt}")
    taken.add(offered)
    return offered


@dataclass(frozen=True)
class OfferedName:
    server: str
    original: str
    offered: str
    # Set when the offered name is not simply "<server>__<original>": shown in the server's status.
    warning: str | None = None


def offer(
    tools: Iterable[tuple[str, str]], reserved: Iterable[str] = (), *, kind: str = "tool"
) -> list[OfferedName]:
    """Name every ``(server, tool)`` pair, deterministically whatever the input order (prompts are
    named the same way; ``kind`` names what is named in the warnings).

    Pairs whose plain name is already safe claim it first, so a renamed tool
    can never take the name of one that needed no renaming; the rest follow in
    sorted order and get a hash suffix when their sanitised name is taken.
    """
    taken = set(reserved)
    plain: list[tuple[str, str]] = []
    renamed: list[tuple[str, str]] = []
    for server, tool in sorted(set(tools)):
        full = f"{server}{SEPARATOR}{tool}"
        (plain if fit(sanitize(full), full) == full and full not in taken else renamed).append((server, tool))
    result = []
    for server, tool in plain:
        full = f"{server}{SEPARATOR}{tool}"
        taken.add(full)
        result.append(OfferedName(server, tool, full))
    for server, tool in renamed:
        identity = f"{server}{SEPARATOR}{tool}"
        offered = claim(identity, identity, taken)
        result.append(OfferedName(server, tool, offered, f"{kind} {tool!r} offered as {offered!r}"))
    return result
