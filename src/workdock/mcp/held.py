"""What a held server's status says the user must do: the line to approve, the inputs to give."""

from __future__ import annotations

from typing import Any

from workdock.agentapi import InputNeeded
from workdock.mcp.config import Entry, HeldEntry


def held_fields(entry: Entry) -> dict[str, Any]:
    """``launch`` and ``inputs`` for a ``ServerStatus``; nothing for a server that is not held."""
    if not isinstance(entry, HeldEntry):
        return {}
    inputs = [
        InputNeeded(
            id=i.id,
            description=i.description,
            password=i.password,
            env=i.env_name,
            options=list(i.options),
            default=i.default,
        )
        for i in entry.inputs
    ]
    launch = entry.origin.launch if entry.origin and entry.state == "pending_approval" else None
    return {"launch": launch, "inputs": inputs}
