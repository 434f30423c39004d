"""The command-line clients start fast: they do not import what only the servers need.

Importing the chat server (pydantic-ai, SQLAlchemy, alembic, the MCP SDK) takes seconds; the
terminal client and the agent CLI talk HTTP and must not pay for it at every start. Checked in a
fresh interpreter, by what it has imported, rather than by a time that moves with the machine.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


def imported_after(module: str) -> set[str]:
    """The modules a fresh interpreter holds once ``module`` is imported (its ``main`` not run)."""
    probe = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return set(out.stdout.split())


@pytest.mark.parametrize(
    ("client", "not_loaded"),
    [
        # The terminal client: nothing of the server, no model library, no MCP SDK.
        (
            "workdock.chat.cli_chat",
            {"workdock.chat.app", "workdock.chat.services", "pydantic_ai", "mcp", "sqlalchemy"},
        ),
        # The agent CLI (`workdock tools`, `status`, `--help`): the agent API's models only.
        ("workdock.cli", {"workdock.chat.app", "pydantic_ai", "mcp", "mcp_types", "sqlalchemy", "fastapi"}),
    ],
)
def test_a_client_does_not_import_the_servers(client: str, not_loaded: set[str]) -> None:
    loaded = imported_after(client)
    assert client in loaded
    assert loaded & not_loaded == set()
