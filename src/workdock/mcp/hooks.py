"""What a caller can hand a running tool call: a sink for progress and a way to ask the user.

A server asks for input in one of two ways: a 2025-era server sends ``elicitation/create``
while the call runs, a 2026-07-28 server answers ``input_required`` and is called again with
the answers. Both reach the caller as one ``ask`` with the request's params; a caller without
one (a plain HTTP call) has every request declined at once, with the reason in the log and in
the answer's ``_meta``.
"""

from __future__ import annotations

__all__ = [
    "CANNOT_ASK",
    "NO_HOOKS",
    "AskFn",
    "CallHooks",
    "ProgressFn",
    "SampleFn",
    "declined",
    "no_sampling",
]

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import mcp_types as types
from mcp.shared.dispatcher import ProgressFnT as ProgressFn

# ProgressFn: awaited as (progress, total, message) for each ``notifications/progress`` of the call.

AskFn = Callable[[types.ElicitRequestParams], Awaitable[types.ElicitResult]]
"""Put a server's request for input to the user; returns their answer (accept, decline, cancel)."""

SampleFn = Callable[
    [types.CreateMessageRequestParams], Awaitable[types.CreateMessageResult | types.ErrorData]
]
"""Put a server's ``sampling/createMessage`` to the caller's model (an MCP client that offers it)."""

CANNOT_ASK = "the caller of this tool cannot ask the user (it called without a way to answer)"
REASON_KEY = "workdock/reason"


@dataclass(frozen=True)
class CallHooks:
    on_progress: ProgressFn | None = None
    ask: AskFn | None = None
    sample: SampleFn | None = None  # only an MCP client of the gateway that offers sampling has one


NO_HOOKS = CallHooks()


def no_sampling(reason: str) -> types.ErrorData:
    """The answer to a server's sampling request that nobody here can serve."""
    return types.ErrorData(code=types.INVALID_REQUEST, message=f"sampling is not available: {reason}")


def declined(reason: str) -> types.ElicitResult:
    """A decline that says why in ``_meta`` (the protocol's decline carries no message)."""
    return types.ElicitResult(action="decline", _meta={REASON_KEY: reason})
