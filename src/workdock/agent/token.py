"""Where the agent's bearer token comes from, for the agent and for its clients alike."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TOKEN_ENV = "WORKDOCK_AGENT_TOKEN"


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "workdock"


def default_token_file() -> Path:
    return state_dir() / "agent.token"


def read_token(token_file: Path | None = None) -> str | None:
    """``WORKDOCK_AGENT_TOKEN``, else the given file, else the default file; ``None`` if none is set."""
    if token := os.environ.get(TOKEN_ENV, "").strip():
        return token
    path = token_file or default_token_file()
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        if token_file is not None:
            raise
        return None


def agent_token(token_file: Path | None = None) -> tuple[str, Path | None]:
    """The token the agent serves with, and the file it wrote when it had to make one."""
    if token := read_token(token_file):
        return token, None
    token = secrets.token_urlsafe(32)
    path = default_token_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created 0600 from the start: the token is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    return token, path
