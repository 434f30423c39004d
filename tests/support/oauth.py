"""The OAuth-protected MCP test server (`fixtures/servers/oauth_http.py`) as a child process.

A real streamable-HTTP MCP server with its own authorization server (the `mcp` SDK's
server-side auth), whose authorize endpoint approves at once and redirects to the client's
redirect URI; `stats()` says what it granted and issued.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx2

from .helpers import FIXTURES, free_port, wait_until_sync

Spawn = Callable[..., subprocess.Popen[bytes]]


class OAuthServer:
    def __init__(self, spawn: Spawn, log: Path, token_seconds: int = 3600) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        env = {**os.environ, "OAUTH_TOKEN_SECONDS": str(token_seconds)}
        with log.open("wb") as out:
            self.process = spawn(
                [sys.executable, FIXTURES / "oauth_http.py", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_until_sync(self._up, timeout=20, message="the OAuth fixture server to answer")

    def _up(self) -> bool:
        assert self.process.poll() is None, "the OAuth fixture server exited"
        try:
            return httpx2.get(f"http://127.0.0.1:{self.port}/stats", timeout=2).status_code == 200
        except httpx2.TransportError:
            return False

    def stats(self) -> dict[str, Any]:
        return httpx2.get(f"http://127.0.0.1:{self.port}/stats", timeout=5).json()


def follow(authorization_url: str) -> dict[str, str]:
    """What a browser does: open the URL; the server redirects to the redirect URI with the code."""
    answer = httpx2.get(authorization_url, follow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return dict(parse_qsl(urlsplit(answer.headers["location"]).query))
