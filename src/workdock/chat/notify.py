"""Wake-ups between the replicas of the service: short notifications on named channels.

A notification says *that* something changed and *which* (a chat id, a workspace id); what changed
is in the database. PostgreSQL carries them between processes (``LISTEN``/``NOTIFY``: one dedicated
connection per replica); SQLite serves one process, so there they stay in it. Both deliver a
replica's own notifications back to it, so every replica reacts to a change the same way whichever
one made it.

A listener that lost its connection missed whatever was sent meanwhile, and so did the others when
it was the sender: after a reconnect each handler is called with ``None`` ("re-read what you
track") on this replica, and a resync notification asks every other replica to do the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

import asyncpg
from sqlalchemy.engine import make_url

from workdock.chat.tasks import spawn

logger = logging.getLogger(__name__)

QUEUE = "workdock_queue"  # chat id: a message waits for a turn (or a lease was given back)
CHAT = "workdock_chat"  # chat id: its row changed in a way its owner must see (interrupt, deletion)
EVENTS = "workdock_events"  # "chat:seq,...": events up to seq are stored
ADMIN = "workdock_admin"  # the admin MCP servers changed
LINKS = "workdock_links"  # workspace id: its link moved or ended, or its token or row changed
AUTH = "workdock_auth"  # tokens or users were deleted: cached lookups are stale
RESYNC = "workdock_resync"  # a replica lost notifications: everyone re-reads

APPLICATION_NAME = "workdock notifications"
MAX_PAYLOAD = 7900  # PostgreSQL refuses payloads from 8000 bytes

# Called with the payload, or None when notifications may have been missed.
Handler = Callable[[str | None], None]


class Notifier(Protocol):
    async def start(self) -> None: ...

    async def notify(self, channel: str, payload: str = "") -> None:
        """Send a notification; never raises (a lost one is made up for by a resync)."""

    def listen(self, channel: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler`` for each notification on ``channel``; returns the way to stop."""

    async def aclose(self) -> None: ...


class _Handlers:
    """The handlers of each channel, each called on its own so that one failing stops no other."""

    def __init__(self) -> None:
        self._by_channel: dict[str, list[Handler]] = {}

    @property
    def channels(self) -> list[str]:
        return [channel for channel, handlers in self._by_channel.items() if handlers]

    def add(self, channel: str, handler: Handler) -> Callable[[], None]:
        handlers = self._by_channel.setdefault(channel, [])
        handlers.append(handler)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                handlers.remove(handler)

        return remove

    def dispatch(self, channel: str, payload: str | None) -> None:
        for handler in list(self._by_channel.get(channel, ())):
            try:
                handler(payload)
            except Exception:
                logger.exception("a handler of %s failed", channel)

    def resync(self) -> None:
        for channel in list(self._by_channel):
            self.dispatch(channel, None)


class LocalNotifier:
    """One process (SQLite): notifications go straight to this process's handlers, soon after the
    sender's call returns, as they would arrive from PostgreSQL."""

    def __init__(self) -> None:
        self._handlers = _Handlers()

    async def start(self) -> None:
        pass

    async def notify(self, channel: str, payload: str = "") -> None:
        asyncio.get_running_loop().call_soon(self._handlers.dispatch, channel, payload)

    def listen(self, channel: str, handler: Handler) -> Callable[[], None]:
        return self._handlers.add(channel, handler)

    async def aclose(self) -> None:
        pass


def asyncpg_dsn(database_url: str) -> str:
    """The libpq-style URL asyncpg connects with, from the server's ``postgresql+asyncpg://`` one."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresNotifier:
    """``LISTEN``/``NOTIFY`` on one dedicated asyncpg connection, kept up by a supervisor.

    The connection is checked every ``check_every`` seconds (a dead one would lose notifications
    without a sound); when it is lost it is opened again with backoff, every channel is listened to
    again, this replica's handlers are told to resync and a ``RESYNC`` notification tells the others.
    """

    def __init__(
        self, dsn: str, *, check_every: float = 5.0, timeout: float = 5.0, backoff_max: float = 5.0
    ) -> None:
        self._dsn = dsn
        self._check_every = check_every
        self._timeout = timeout
        self._backoff_max = backoff_max
        self._handlers = _Handlers()
        self._connection: asyncpg.Connection[Any] | None = None
        self._lock = asyncio.Lock()  # asyncpg runs one statement at a time per connection
        self._lost = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._listening: set[str] = set()

    async def start(self) -> None:
        await self._connect()
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(), name="notifier")

    async def _connect(self) -> None:
        connection: asyncpg.Connection[Any] = await asyncio.wait_for(
            # Named, so that an operator (and a test) can tell it apart in pg_stat_activity.
            asyncpg.connect(self._dsn, server_settings={"application_name": APPLICATION_NAME}),
            self._timeout,
        )
        connection.add_termination_listener(lambda _: self._lost.set())
        self._listening = set()
        self._connection = connection
        self._lost.clear()
        for channel in [RESYNC, *self._handlers.channels]:
            await self._listen_on(channel)

    async def _listen_on(self, channel: str) -> None:
        connection = self._connection
        if connection is None or channel in self._listening:
            return
        self._listening.add(channel)
        async with self._lock:
            await asyncio.wait_for(connection.add_listener(channel, self._received), self._timeout)

    def _received(self, _connection: Any, _pid: int, channel: str, payload: str) -> None:
        if channel == RESYNC:
            self._handlers.resync()
        else:
            self._handlers.dispatch(channel, payload)

    async def _supervise(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._check_every):  # (wait_for can swallow a cancel)
                    await self._lost.wait()
            if not self._lost.is_set() and await self._healthy():
                continue
            logger.warning("the notification connection to PostgreSQL was lost; reconnecting")
            await self._drop()
            delay = 0.2
            while True:
                try:
                    await self._connect()
                    break
                except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                    logger.warning("cannot reach PostgreSQL for notifications (%r); retrying", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._backoff_max)
            logger.info("notifications from PostgreSQL are back; re-reading what was missed")
            self._handlers.resync()
            await self.notify(RESYNC)

    async def _healthy(self) -> bool:
        connection = self._connection
        if connection is None or connection.is_closed():
            return False
        try:
            async with self._lock:
                await asyncio.wait_for(connection.execute("SELECT 1"), self._timeout)
            return True
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2)
            connection.terminate()

    async def notify(self, channel: str, payload: str = "") -> None:
        if len(payload.encode()) > MAX_PAYLOAD:
            raise ValueError(f"a notification payload over {MAX_PAYLOAD} bytes (on {channel})")
        connection = self._connection
        if connection is None:
            return  # reconnecting: the resync that follows makes up for it
        try:
            async with self._lock:
                await asyncio.wait_for(
                    connection.execute("SELECT pg_notify($1, $2)", channel, payload), self._timeout
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            logger.warning("a notification on %s was not sent (%r); everyone will resync", channel, exc)
            self._lost.set()

    def listen(self, channel: str, handler: Handler) -> Callable[[], None]:
        remove = self._handlers.add(channel, handler)
        if channel not in self._listening and self._connection is not None:
            spawn(self._listen_soon(channel))
        return remove

    async def _listen_soon(self, channel: str) -> None:
        try:
            await self._listen_on(channel)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            self._listening.discard(channel)
            self._lost.set()  # the reconnect listens to every channel again

    async def aclose(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        await self._drop()


def notifier_for(database_url: str) -> Notifier:
    """PostgreSQL's notifications for a PostgreSQL database; in-process ones for SQLite."""
    if make_url(database_url).drivername.startswith("postgresql"):
        return PostgresNotifier(asyncpg_dsn(database_url))
    return LocalNotifier()
