"""Offered tool names: LLM-safe, unique, deterministic (spec/agent.md §2)."""

from __future__ import annotations

import random
import re

from workdock.mcp.naming import offer, sanitize

SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def names(pairs, reserved=()) -> dict[tuple[str, str], str]:
    return {(o.server, o.original): o.offered for o in offer(pairs, reserved)}


def test_plain_names_are_server_double_underscore_tool() -> None:
    assert names([("github", "create_issue")]) == {("github", "create_issue"): "github__create_issue"}


def test_unsafe_characters_are_replaced_and_reported() -> None:
    result = offer([("srv", "a.b:c d")])
    assert result[0].offered == "srv__a_b_c_d"
    assert result[0].warning == "tool 'a.b:c d' offered as 'srv__a_b_c_d'"


def test_long_names_are_cut_with_a_stable_hash() -> None:
    long_tool = "t" * 100
    first = names([("srv", long_tool)])[("srv", long_tool)]
    assert len(first) == 64 and SAFE.match(first)
    assert names([("srv", long_tool)])[("srv", long_tool)] == first
    other = names([("srv", "t" * 99 + "u")])[("srv", "t" * 99 + "u")]
    assert other != first  # same prefix, different tool: different suffix


def test_collisions_are_resolved_deterministically_and_clean_names_keep_theirs() -> None:
    pairs = [("srv", "a_b"), ("srv", "a.b"), ("srv", "a:b"), ("other", "x")]
    expected = names(pairs)
    assert expected[("srv", "a_b")] == "srv__a_b"  # needed no renaming: keeps its name
    assert len(set(expected.values())) == 4
    for _ in range(10):
        shuffled = pairs[:]
        random.shuffle(shuffled)
        assert names(shuffled) == expected


def test_every_offered_name_is_safe_and_unique_even_for_hostile_input() -> None:
    pairs = [("s", name) for name in ["", ".", "..", "a" * 300, "é", "🙂", "a b", "a\nb", "x" * 64, "x" * 65]]
    pairs += [("s", "x" * 62 + c) for c in ".:/"]  # long *and* colliding after replacement
    result = names(pairs)
    assert len(set(result.values())) == len(pairs)
    assert all(SAFE.match(n) for n in result.values())


def test_reserved_names_are_never_offered() -> None:
    result = names([("read", "file")], reserved={"read__file"})
    assert result[("read", "file")] != "read__file" and SAFE.match(result[("read", "file")])


def test_sanitize() -> None:
    assert sanitize("a.b/c") == "a_b_c" and sanitize("") == "_"
