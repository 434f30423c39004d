"""Log lines on the terminal: one format for ``agent``, ``server`` and ``up``."""

from __future__ import annotations

import logging
import sys

# The HTTP stacks' per-request lines and uvicorn's own start-up chatter are noise at INFO.
_NOISY = ("httpx2", "httpcore", "mcp", "uvicorn.access", "uvicorn.error")
# The lines a user of `up` wants to see: each MCP server's state as it changes.
SERVER_STATES = "workdock.mcp.connection"


def setup_logging(verbose: bool = False, *, level: int = logging.INFO) -> None:
    """``level`` for our own lines (``-v``: DEBUG, with the servers' stderr)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else level,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)
    # Server state changes are told at any level: they are what the terminal is for.
    logging.getLogger(SERVER_STATES).setLevel(logging.DEBUG if verbose else logging.INFO)
