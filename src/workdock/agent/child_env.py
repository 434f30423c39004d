"""The environment a workspace child gets: every stdio MCP server the agent starts, and every
command ``/exec`` runs.

It is the agent's own environment without the agent's token (it authenticates the agent's
callers; a child has no use for it, and a `.mcp.json` from a cloned repo must not be able to
send it anywhere) and without whatever the agent was told to withhold: when the agent runs
inside the chat server (``workdock up``), the chat server's own settings and secrets.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from workdock.agent.token import TOKEN_ENV

Withheld = Callable[[str], bool]
"""Names a variable the workspace's children must not see."""


def workspace_env(
    overrides: Mapping[str, str] | None = None, *, withheld: Withheld | None = None
) -> dict[str, str]:
    """The environment for one child, with ``overrides`` (a server's ``env`` entry) laid over it."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name != TOKEN_ENV and not (withheld is not None and withheld(name))
    }
    env.update(overrides or {})
    return env
