"""Claude Code's ``headersHelper``: a command that prints an HTTP/SSE server's headers as JSON.

Run (``sh -c``, in the workspace dir, with a workspace child's environment) before a connection's
first request, and again when the server answers 401, after which that request is sent once more
with the new headers. Its output is credentials: never logged, never shown; an error names only
the command's exit status.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path

import anyio
import httpx2
import orjson

logger = logging.getLogger(__name__)

HELPER_TIMEOUT = 30.0
MAX_HELPER_OUTPUT = 64 * 1024


class HeadersHelperError(Exception):
    pass


class HeadersHelperAuth(httpx2.Auth):
    """Adds the helper's headers to every request; reruns it on a 401 and retries that request once."""

    def __init__(self, command: str, *, cwd: Path, env: Mapping[str, str], server: str) -> None:
        self.command = command
        self.cwd = cwd
        self.env = dict(env)
        self.server = server
        self._headers: dict[str, str] | None = None
        self._lock = anyio.Lock()

    async def headers(self, *, again: bool = False) -> dict[str, str]:
        async with self._lock:
            if self._headers is None or again:
                self._headers = await self._run()
            return self._headers

    async def _run(self) -> dict[str, str]:
        try:
            with anyio.fail_after(HELPER_TIMEOUT):
                done = await anyio.run_process(
                    ["sh", "-c", self.command],
                    cwd=self.cwd,
                    env=self.env,
                    check=False,
                    stdin=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,  # may echo what it fetched: not kept
                )
        except TimeoutError:
            raise HeadersHelperError(f"headersHelper did not finish within {HELPER_TIMEOUT:g} s") from None
        except OSError as exc:
            raise HeadersHelperError(f"headersHelper could not run: {exc.strerror or exc}") from None
        if done.returncode != 0:
            raise HeadersHelperError(f"headersHelper exited with status {done.returncode}")
        if len(done.stdout) > MAX_HELPER_OUTPUT:
            raise HeadersHelperError(f"headersHelper printed more than {MAX_HELPER_OUTPUT} bytes")
        try:
            parsed = orjson.loads(done.stdout)
        except orjson.JSONDecodeError:
            raise HeadersHelperError("headersHelper did not print a JSON object") from None
        if not isinstance(parsed, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
        ):
            raise HeadersHelperError("headersHelper must print a JSON object of string values")
        logger.debug("server %s: headersHelper gave %d headers", self.server, len(parsed))
        return parsed

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        request.headers.update(await self.headers())
        response = yield request
        if response.status_code == 401:
            await response.aread()
            request.headers.update(await self.headers(again=True))
            yield request
