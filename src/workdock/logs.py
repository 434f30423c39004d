"""Log lines on the terminal: one format for ``agent``, ``server`` and ``up``."""

from __future__ import annotations

import logging
import sys

from workdock.log_redact import install_redaction

# The HTTP stacks' per-request lines and uvicorn's own start-up chatter are noise at INFO; with
# -v they show at INFO, not every byte the HTTP, MCP and database stacks move at DEBUG.
_NOISY = ("httpx2", "httpcore", "httpcore2", "mcp", "aiosqlite", "asyncio", "uvicorn.access", "uvicorn.error")
# The lines a user of `up` wants to see: each MCP server's state as it changes.
SERVER_STATES = "workdock.mcp.connection"


def setup_logging(verbose: bool = False, *, level: int = logging.INFO, access_log: bool = False) -> None:
    """``level`` for our own lines (``-v``: DEBUG, with the servers' stderr); ``access_log``: a line
    per HTTP request (``workdock server``)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else level,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)
    if access_log:
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    if not verbose:
        # The SDK logs a failed sign-in with its traceback; the server's own line says why, once.
        logging.getLogger("mcp.client.auth.oauth2").addFilter(lambda record: record.exc_info is None)
    # Server state changes are told at any level: they are what the terminal is for.
    logging.getLogger(SERVER_STATES).setLevel(logging.DEBUG if verbose else logging.INFO)
    install_redaction()  # no token or login code in any line, whoever logs it
