"""Conditional listings: the catalog version is the ETag of every list the agent serves."""

from __future__ import annotations

from typing import Any

# Declared by hand: the handlers read the query themselves (no per-request parameter machinery).
REFRESH_PARAMETER: dict[str, Any] = {
    "parameters": [
        {
            "name": "refresh",
            "in": "query",
            "required": False,
            "schema": {"type": "boolean", "default": False},
            "description": "Re-read the config files and re-list every server before answering.",
        }
    ]
}


def wants_refresh(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes")


def etag_matches(header: str | None, version: str) -> bool:
    """Whether an ``If-None-Match`` header names ``version`` (weak or strong, in a list, or ``*``)."""
    if not header:
        return False
    candidates = {c.strip().removeprefix("W/").strip('"') for c in header.split(",")}
    return version in candidates or "*" in candidates
