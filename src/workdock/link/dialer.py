"""The agent's side of the link: dial the server, serve what arrives, redial when the link is lost.

The reconnect loop is the ``websockets`` client's own (``async for connection in connect(...)``)
with our delays: 1 s doubling to 30 s, each with jitter, so a server restart is not met by every
agent at the same instant. A refused token is never retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Generator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from starlette.types import ASGIApp
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import process_exception
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from workdock import __version__
from workdock.link.asgi import AsgiBridge
from workdock.link.frames import MAX_MESSAGE, PROTOCOL, ProtocolError
from workdock.link.session import (
    CLOSE_REPLACED,
    CLOSE_REVOKED,
    PING_INTERVAL,
    SILENCE_LIMIT,
    LinkClosed,
    Session,
)

logger = logging.getLogger(__name__)

LINK_PATH = "/api/v0/agents/link"
VERSION_HEADER = "Workdock-Agent-Version"
FIRST_DELAY = 1.0
MAX_DELAY = 30.0

EXIT_REFUSED = 2  # the server refused the token: redialling cannot help
EXIT_STOPPED = 1  # replaced by another agent, or the server is not a workdock server


@dataclass(frozen=True)
class LinkSettings:
    server_url: str
    token: str
    ping_interval: float = PING_INTERVAL
    silence_limit: float = SILENCE_LIMIT


def link_url(server_url: str) -> str:
    """``http(s)://host[/prefix]`` → ``ws(s)://host[/prefix]/api/v0/agents/link``."""
    parts = urlsplit(server_url.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"{server_url!r}: the server URL must start with http:// or https://")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + LINK_PATH, "", ""))


def _jitter(delay: float) -> float:
    return random.uniform(delay / 2, delay)


def redial_delays() -> Generator[float]:
    delay = FIRST_DELAY
    while True:
        yield _jitter(delay)
        delay = min(delay * 2, MAX_DELAY)


class _Socket:
    """A ``websockets`` client connection as the session's Socket."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    async def send(self, data: bytes) -> None:
        try:
            await self._connection.send(data)
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def recv(self) -> bytes:
        try:
            data = await self._connection.recv(decode=False)
        except ConnectionClosed as exc:
            raise _closed(exc) from None
        if isinstance(data, str):
            raise ProtocolError("a text message on the link")
        return data

    async def close(self, code: int, reason: str) -> None:
        await self._connection.close(code, reason)


def _closed(exc: ConnectionClosed) -> LinkClosed:
    if exc.rcvd is not None:
        return LinkClosed(exc.rcvd.code, exc.rcvd.reason)
    return LinkClosed(1006, "the connection was lost")


def _retryable(exc: Exception) -> Exception | None:
    """Network errors and 5xx (a restarting server or its proxy) are retried; other answers are not."""
    if isinstance(exc, InvalidStatus) and exc.response.status_code in (408, 429):
        return None
    return process_exception(exc)


async def run_link(app: ASGIApp, settings: LinkSettings) -> int:
    """Keep the link up until cancelled. Returns an exit status when the agent must stop."""
    url = link_url(settings.server_url)
    bridge = AsgiBridge(app)
    dialer = connect(
        url,
        additional_headers={"Authorization": f"Bearer {settings.token}", VERSION_HEADER: __version__},
        user_agent_header=f"workdock-agent/{__version__}",
        subprotocols=[PROTOCOL],  # type: ignore[list-item]
        compression=None,  # bodies are JSON the agent already keeps small or large; deflate costs CPU
        ping_interval=None,  # the session pings and watches for silence itself, on both ends
        max_size=MAX_MESSAGE,
        write_limit=4 * MAX_MESSAGE,  # a few whole frames may wait in the socket before send() waits
        open_timeout=15,
        close_timeout=5,
        reconnect_delays=redial_delays,
        process_exception=_retryable,
    )
    try:
        async for connection in dialer:
            peer = connection.remote_address
            logger.info("linked to %s (from %s)", url, peer[0] if peer else "?")
            session = Session(
                _Socket(connection),
                on_open=bridge.open,
                ping_interval=settings.ping_interval,
                silence_limit=settings.silence_limit,
            )
            outcome = await session.run()
            if outcome.code == CLOSE_REVOKED:
                logger.error("the server revoked this agent's token (%s); stopping", outcome.reason)
                return EXIT_REFUSED
            if outcome.code == CLOSE_REPLACED:
                logger.error("%s; this agent stops", outcome.reason or "another agent took this workspace")
                return EXIT_STOPPED
            delay = _jitter(FIRST_DELAY)
            logger.warning("the link was lost (%s); redialling in %.1f s", outcome, delay)
            await asyncio.sleep(delay)
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403):
            logger.error(
                "the server refused this agent's token (HTTP %d): check WORKDOCK_AGENT_TOKEN or "
                "--token-file, or make a new token for the workspace; stopping",
                status,
            )
            return EXIT_REFUSED
        logger.error("%s answered the link with HTTP %d: is it a workdock server?", url, status)
        return EXIT_STOPPED
    except (InvalidURI, InvalidHandshake) as exc:
        logger.error("cannot link to %s: %s", url, exc)
        return EXIT_STOPPED
    finally:
        await bridge.aclose()
    return EXIT_STOPPED
