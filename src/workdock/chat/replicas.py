"""The replicas of the service: each running chat server has a row with its address and a
heartbeat; the others read who is alive from there. The secret replicas authenticate their calls
to each other with is the service's own, kept (sealed) in the database, made by the first one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, literal, select, update
from sqlalchemy.exc import IntegrityError

from workdock.chat.store.models import Replica, ServiceSecret, UTCDateTime, utcnow
from workdock.chat.store.repo import Store
from workdock.secretbox import SecretBox

logger = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
DEAD_AFTER_S = 30.0  # a replica whose heartbeat is older is not trusted to hold anything
FORGET_AFTER = timedelta(hours=1)  # rows of replicas gone this long are removed
SECRET_NAME = "replica"
SECRET_PREFIX = "wdr_"  # shaped like our tokens, so a log line never shows it


class AddressTaken(Exception):
    """Another live replica was started with this replica's address."""


@dataclass(frozen=True)
class Peer:
    id: str
    address: str
    alive: bool
    heartbeat_at: datetime


class ReplicaRegistry:
    def __init__(
        self,
        store: Store,
        box: SecretBox,
        *,
        address: str,
        heartbeat_s: float = HEARTBEAT_S,
        dead_after_s: float = DEAD_AFTER_S,
    ) -> None:
        self.store = store
        self.box = box
        self.id = uuid.uuid4().hex
        self.address = address
        self.host = socket.gethostname()[:255]
        self.heartbeat_s = heartbeat_s
        self.dead_after = timedelta(seconds=dead_after_s)
        self.secret = ""
        self._peers: dict[str, Peer] = {}
        self._task: asyncio.Task[None] | None = None

    # ---- who is alive --------------------------------------------------------------------------

    def peer(self, replica_id: str) -> Peer | None:
        return self._peers.get(replica_id)

    def alive(self, replica_id: str) -> bool:
        if replica_id == self.id:
            return True
        peer = self._peers.get(replica_id)
        return peer is not None and peer.alive

    def check_secret(self, candidate: str | None) -> bool:
        return bool(candidate) and bool(self.secret) and hmac.compare_digest(candidate or "", self.secret)

    # ---- start, heartbeat, stop ----------------------------------------------------------------

    async def start(self) -> list[str] | None:
        """Register this replica; the ids of its earlier lives (rows left by a process that ran with
        this address and is gone), or None on SQLite, where every other holder was an earlier life
        (one process serves the database)."""
        earlier: list[str] | None = None if not self.store.postgres else []
        try:
            self.secret = await self._service_secret()
        except Exception as exc:  # a read-only database: nobody calls a lone SQLite server anyway
            logger.warning("cannot keep the service secret in the database: %r", exc)
            self.secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        try:
            if earlier is not None:
                earlier = await self._earlier_lives()
            await self._forget(earlier)
            await self._register()
            await self._load_peers()
        except AddressTaken:
            raise
        except Exception as exc:
            logger.warning("cannot register this replica yet (retrying): %r", exc)
        self._task = asyncio.get_running_loop().create_task(self._beat(), name="replica heartbeat")
        return earlier

    async def _service_secret(self) -> str:
        async with self.store.sessions() as s:
            sealed = await s.scalar(select(ServiceSecret.value).where(ServiceSecret.name == SECRET_NAME))
        if sealed is None:
            made = SECRET_PREFIX + secrets.token_urlsafe(32)
            try:
                async with self.store.sessions.begin() as s:
                    s.add(ServiceSecret(name=SECRET_NAME, value=self.box.seal(made), created_at=utcnow()))
                return made
            except IntegrityError:  # another replica made it first: theirs is the one
                async with self.store.sessions() as s:
                    sealed = await s.scalar(
                        select(ServiceSecret.value).where(ServiceSecret.name == SECRET_NAME)
                    )
        assert sealed is not None
        return self.box.open(sealed)

    async def _earlier_lives(self) -> list[str]:
        """Rows with this address whose process is gone. One whose process still runs is another
        replica given the same address: refused, since the others could not tell the two apart."""
        now = self._db_now()
        async with self.store.sessions() as s:
            rows = (
                await s.execute(
                    select(
                        Replica.id, Replica.host, Replica.pid, (Replica.heartbeat_at > now).label("fresh")
                    ).where(Replica.address == self.address)
                )
            ).all()
        earlier = []
        for row in rows:
            running_here = row.host == self.host and row.pid != os.getpid() and _pid_runs(row.pid)
            elsewhere_alive = row.host != self.host and row.fresh
            if running_here or elsewhere_alive:
                raise AddressTaken(
                    f"a replica at {self.address} is running already (pid {row.pid} on {row.host}): "
                    "give each replica its own --replica-address"
                )
            earlier.append(row.id)
        return earlier

    async def _forget(self, earlier: list[str] | None) -> None:
        """The rows of this replica's earlier lives (None: of every other, on SQLite) go: those
        processes are gone, and nothing they held is to be trusted."""
        gone = Replica.id.in_(earlier) if earlier is not None else Replica.id != self.id
        async with self.store.sessions.begin() as s:
            await s.execute(delete(Replica).where(gone))

    def _db_now(self, minus: timedelta | None = None) -> object:
        """The database's time (PostgreSQL) less ``minus``; this process's on SQLite."""
        minus = minus if minus is not None else self.dead_after
        if self.store.postgres:
            return func.now() - minus
        return literal(utcnow() - minus, UTCDateTime())

    async def _register(self) -> None:
        # The database's clock on PostgreSQL: liveness is judged by it, not by the replicas' clocks.
        now = func.now() if self.store.postgres else utcnow()
        async with self.store.sessions.begin() as s:
            beat = await s.execute(update(Replica).where(Replica.id == self.id).values(heartbeat_at=now))
            if not beat.rowcount:  # type: ignore[attr-defined]
                s.add(
                    Replica(
                        id=self.id,
                        address=self.address,
                        host=self.host,
                        pid=os.getpid(),
                        started_at=now,
                        heartbeat_at=now,
                    )
                )

    async def _load_peers(self) -> None:
        fresh = self._db_now()
        async with self.store.sessions() as s:
            rows = (
                await s.execute(
                    select(
                        Replica.id,
                        Replica.address,
                        Replica.heartbeat_at,
                        (Replica.heartbeat_at > fresh).label("alive"),
                    )
                )
            ).all()
        self._peers = {r.id: Peer(r.id, r.address, bool(r.alive), r.heartbeat_at) for r in rows}

    async def _beat(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self._register()
                await self._load_peers()
                async with self.store.sessions.begin() as s:
                    await s.execute(delete(Replica).where(Replica.heartbeat_at < self._db_now(FORGET_AFTER)))
                failing = False
            except Exception as exc:
                if not failing:
                    logger.error("cannot record this replica's heartbeat: %r", exc)
                failing = True

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(Exception):
            async with self.store.sessions.begin() as s:
                await s.execute(delete(Replica).where(Replica.id == self.id))


def _pid_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
