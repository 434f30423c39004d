"""Replicas on one PostgreSQL: what a second and third server process buy, and what they cost.

1. Turns per second with the instant fake model: the same work (chats x messages, posted round
   robin over the replicas, watched to their end) on 1 replica, then on 3, each on a fresh database.
2. Cross-replica event delay: one replica runs every turn (the others are started with
   ``WORKDOCK_MAX_TURNS=0``), the model streams a token every 5 ms, and a watcher on each replica
   follows every chat. For each event the delay is its arrival at a watcher on another replica less
   its arrival at the watcher on the one running the turn (p50/p99).
3. Failover: a turn is running (the model holds its answer), the replica running it is killed with
   SIGKILL and a message is posted through a survivor at once. Reported: kill to the chat marked
   ``interrupted`` on the survivor's stream, and kill to the new message's answer (chat usable).
   The replicas run with the default lease (30 s), so this is what a crash costs as shipped.

A throwaway PostgreSQL (Debian's binaries, as the tests use) and the server processes run on
127.0.0.1; the fake model and all watchers run in this process.

    python bench/replicas_bench.py [--chats 30] [--messages 3] [--delay-chats 10] [--failovers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.chat.fake_openai import FakeOpenAI, Reply, _chunk  # noqa: E402
from tests.support.helpers import free_port  # noqa: E402
from tests.support.postgres import PostgresServer, start_postgres, unavailable  # noqa: E402
from workdock.chat.notify import asyncpg_dsn  # noqa: E402
from workdock.chat.store.db import normalize_url  # noqa: E402
from workdock.secretbox import new_key  # noqa: E402

MODEL = "openai:bench"


class PacedModel(FakeOpenAI):
    """The scripted fake model; with ``interval`` set, a plain answer streams ``tokens`` text deltas
    that far apart (as a real model does), else all at once."""

    interval = 0.0
    tokens = 20

    async def _stream(self, reply: Reply):  # type: ignore[no-untyped-def]
        if not self.interval or reply.hold is not None or reply.calls:
            async for chunk in super()._stream(reply):
                yield chunk
            return
        yield _chunk({"role": "assistant", "content": ""})
        for index in range(self.tokens):
            yield _chunk({"content": f"t{index} "})
            await asyncio.sleep(self.interval)
        yield _chunk({}, finish="stop")
        yield b"data: [DONE]\n\n"


@dataclass
class Replica:
    index: int
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    url: str = ""

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


@dataclass
class Service:
    replicas: list[Replica]
    clients: list[httpx2.AsyncClient] = field(default_factory=list)
    database_url: str = ""

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
        for replica in reversed(self.replicas):
            replica.stop()


async def start_service(
    tmp: Path,
    pg: PostgresServer,
    name: str,
    model: FakeOpenAI,
    count: int,
    env_for: Callable[[int], dict[str, str]],
) -> Service:
    database_url = pg.create_database(name)
    key = new_key()
    service = Service([], database_url=database_url)
    for index in range(count):  # one after the other: the first makes the admin and the secret
        data_dir = tmp / f"{name}-{index}"
        port = free_port()
        env = {
            **os.environ,
            "OPENAI_BASE_URL": model.url,
            "OPENAI_API_KEY": "bench",
            "WORKDOCK_MODELS": MODEL,
            "WORKDOCK_SECRET_KEY": key,
            **env_for(index),
        }
        log = open(tmp / f"{name}-{index}.log", "wb")  # noqa: SIM115 - the child keeps it
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workdock.chat.cli_server",
                "--listen",
                f"127.0.0.1:{port}",
                "--data-dir",
                str(data_dir),
                "--database-url",
                database_url,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        replica = Replica(index, port, data_dir, process)
        service.replicas.append(replica)
        await healthy(replica)
    token = (service.replicas[0].data_dir / "admin.token").read_text().strip()
    limits = httpx2.Limits(max_connections=500, max_keepalive_connections=500)
    service.clients = [
        httpx2.AsyncClient(
            base_url=r.url, timeout=60, limits=limits, headers={"Authorization": f"Bearer {token}"}
        )
        for r in service.replicas
    ]
    return service


async def healthy(replica: Replica) -> None:
    deadline = time.monotonic() + 60
    async with httpx2.AsyncClient() as http:
        while time.monotonic() < deadline:
            if replica.process.poll() is not None:
                raise SystemExit(f"replica {replica.index} exited with {replica.process.returncode}")
            try:
                if (await http.get(f"{replica.url}/healthz", timeout=1)).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"replica {replica.index} did not answer /healthz")


async def new_chat(http: httpx2.AsyncClient, workspace_id: str) -> str:
    response = await http.post("/api/v0/chats", json={"workspace_id": workspace_id})
    response.raise_for_status()
    return str(response.json()["id"])


async def new_workspace(http: httpx2.AsyncClient) -> str:
    # No agent listens there (as in chat_stream.py): the turn's workspace source fails at once.
    body = {"name": "bench", "agent_url": f"http://127.0.0.1:{free_port()}", "agent_token": "x"}
    response = await http.post("/api/v0/workspaces", json=body)
    response.raise_for_status()
    return str(response.json()["id"])


async def watch(
    http: httpx2.AsyncClient,
    chat_id: str,
    on_event: Callable[[str, dict[str, Any]], bool],
    subscribed: asyncio.Event | None = None,
) -> None:
    """Follow the chat's stream until ``on_event(id, event)`` says enough; ``subscribed`` is set
    when the first event (the idle chat's status) has arrived."""
    async with http.stream("GET", f"/api/v0/chats/{chat_id}/stream", timeout=None) as response:
        event_id, data = "", []
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                event = json.loads("\n".join(data))
                data = []
                if subscribed is not None and not subscribed.is_set():
                    subscribed.set()
                    continue
                if on_event(event_id, event):
                    return


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


# ---- 1. turns per second ----------------------------------------------------------------------


async def throughput(service: Service, chats: int, messages: int) -> float:
    clients = service.clients
    workspace = await new_workspace(clients[0])
    ids = [await new_chat(clients[i % len(clients)], workspace) for i in range(chats)]
    finished = dict.fromkeys(ids, 0)

    def counter(chat_id: str) -> Callable[[str, dict[str, Any]], bool]:
        def on_event(_: str, event: dict[str, Any]) -> bool:
            if event["type"] == "finish":
                finished[chat_id] += 1
            return finished[chat_id] >= messages

        return on_event

    ready = [asyncio.Event() for _ in ids]
    watchers = [
        asyncio.create_task(watch(clients[i % len(clients)], chat_id, counter(chat_id), ready[i]))
        for i, chat_id in enumerate(ids)
    ]
    await asyncio.gather(*(r.wait() for r in ready))
    started = time.perf_counter()
    posts = []
    for round_ in range(messages):  # round robin: message n of chat c goes to replica (c + n) % N
        for i, chat_id in enumerate(ids):
            http = clients[(i + round_) % len(clients)]
            posts.append(http.post(f"/api/v0/chats/{chat_id}/messages", json={"content": f"m{round_}"}))
    for response in await asyncio.gather(*posts):
        response.raise_for_status()
    await asyncio.wait_for(asyncio.gather(*watchers), timeout=600)
    took = time.perf_counter() - started
    return chats * messages / took


# ---- 2. cross-replica event delay -----------------------------------------------------------


def recorder(arrived: dict[str, float], order: list[str]) -> Callable[[str, dict[str, Any]], bool]:
    """Note when each event arrived, until the turn's end (the chat idle again)."""

    def on_event(event_id: str, event: dict[str, Any]) -> bool:
        arrived[event_id] = time.perf_counter()
        order.append(event_id)
        return event["type"] == "data-status" and event["data"]["status"] == "idle"

    return on_event


async def event_delay(service: Service, chats: int) -> tuple[list[float], int]:
    owner, others = service.clients[0], service.clients[1:]
    workspace = await new_workspace(owner)
    delays: list[float] = []
    events = 0
    for _ in range(chats):
        chat_id = await new_chat(owner, workspace)
        arrived: list[dict[str, float]] = [{} for _ in service.clients]
        order: list[list[str]] = [[] for _ in service.clients]

        ready = [asyncio.Event() for _ in service.clients]
        watchers = [
            asyncio.create_task(watch(http, chat_id, recorder(arrived[i], order[i]), ready[i]))
            for i, http in enumerate(service.clients)
        ]
        await asyncio.gather(*(r.wait() for r in ready))
        (await owner.post(f"/api/v0/chats/{chat_id}/messages", json={"content": "go"})).raise_for_status()
        await asyncio.wait_for(asyncio.gather(*watchers), timeout=60)
        for index in range(1, len(service.clients)):
            if order[index] != order[0]:
                raise SystemExit(f"replica {index} saw other events or another order than the owner")
            delays.extend((arrived[index][i] - arrived[0][i]) * 1000 for i in order[0])
        events += len(order[0])
    assert others  # the delay is measured on the replicas that do not run the turn
    return delays, events


# ---- 3. failover ------------------------------------------------------------------------------


async def holder(database_url: str, chat_id: str) -> int | None:
    """The port of the replica holding the chat's lease."""
    connection = await asyncpg.connect(asyncpg_dsn(normalize_url(database_url)))
    try:
        address = await connection.fetchval(
            "SELECT r.address FROM chats c JOIN replicas r ON r.id = c.lease_owner "
            "WHERE c.id = $1 AND c.lease_expires_at > now()",
            chat_id,
        )
    finally:
        await connection.close()
    return int(address.rsplit(":", 1)[1]) if address else None


async def failover(service: Service, model: FakeOpenAI) -> tuple[float, float]:
    clients = service.clients
    live = [r for r in service.replicas if r.process.poll() is None]
    first = clients[service.replicas.index(live[0])]
    workspace = await new_workspace(first)
    chat_id = await new_chat(first, workspace)
    hold = threading.Event()  # set from this thread, read in the fake model's
    model.add(Reply(text="never", hold=hold))
    asked = len(model.requests)
    (await first.post(f"/api/v0/chats/{chat_id}/messages", json={"content": "hold"})).raise_for_status()
    port = None
    deadline = time.monotonic() + 30
    # Until the turn is running on its replica: the lease taken and the (held) model asked.
    while port is None or len(model.requests) == asked:
        if time.monotonic() > deadline:
            raise SystemExit("no replica took the held turn")
        await asyncio.sleep(0.05)
        port = await holder(service.database_url, chat_id)
    victim = next(r for r in service.replicas if r.port == port)
    survivor = next(r for r in live if r is not victim)
    http = clients[service.replicas.index(survivor)]
    marks: dict[str, float] = {}

    def on_event(_: str, event: dict[str, Any]) -> bool:
        if event["type"] == "data-status" and event["data"]["status"] == "interrupted":
            marks.setdefault("interrupted", time.perf_counter())
        if event["type"] == "finish":
            marks["usable"] = time.perf_counter()
            return True
        return False

    ready = asyncio.Event()
    watcher = asyncio.create_task(watch(http, chat_id, on_event, ready))
    await ready.wait()
    killed = time.perf_counter()
    victim.kill()
    (await http.post(f"/api/v0/chats/{chat_id}/messages", json={"content": "after"})).raise_for_status()
    await asyncio.wait_for(watcher, timeout=120)
    hold.set()
    return marks["interrupted"] - killed, marks["usable"] - killed


async def main(chats: int, messages: int, delay_chats: int, failovers: int) -> None:
    why = unavailable()
    if why:
        raise SystemExit(f"replicas_bench needs PostgreSQL: {why}")
    model = PacedModel()
    model.start(free_port())
    pg_iter = start_postgres(free_port())
    pg = next(pg_iter)
    try:
        with tempfile.TemporaryDirectory() as tmp_text:
            tmp = Path(tmp_text)
            rates: dict[int, float] = {}
            total = chats * messages
            print(f"turns per second, {chats} chats x {messages} messages ({total} turns), instant model:")
            for count in (1, 3):
                service = await start_service(tmp, pg, f"turns{count}", model, count, lambda _: {})
                try:
                    await throughput(service, 3, 1)  # warm up
                    rates[count] = await throughput(service, chats, messages)
                finally:
                    await service.aclose()
                ratio = f"   ratio {rates[3] / rates[1]:.2f}x" if count == 3 else ""
                print(
                    f"  {count} replica{'s' if count > 1 else ' '}  {rates[count]:7.1f} turns/s{ratio}",
                    flush=True,
                )
            model.interval = 0.005
            service = await start_service(
                tmp, pg, "delay", model, 3, lambda i: {} if i == 0 else {"WORKDOCK_MAX_TURNS": "0"}
            )
            try:
                await event_delay(service, 2)  # warm up
                delays, events = await event_delay(service, delay_chats)
            finally:
                await service.aclose()
            print(
                f"cross-replica event delay ({events} events x 2 replicas, a token every 5 ms): "
                f"p50 {pct(delays, 0.5):6.2f} ms  p99 {pct(delays, 0.99):6.2f} ms  (target p50 <= 50 ms)",
                flush=True,
            )
            model.interval = 0.0
            for run in range(failovers):
                service = await start_service(tmp, pg, f"failover{run}", model, 3, lambda _: {})
                try:
                    interrupted, usable = await failover(service, model)
                finally:
                    await service.aclose()
                print(
                    f"failover {run + 1}: kill -9 to 'interrupted' on a survivor {interrupted:5.1f} s, "
                    f"to the next message answered {usable:5.1f} s  (target <= 45 s; lease 30 s)",
                    flush=True,
                )
    finally:
        model.stop()
        next(pg_iter, None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--chats", type=int, default=30)
    parser.add_argument("--messages", type=int, default=3)
    parser.add_argument("--delay-chats", type=int, default=10)
    parser.add_argument("--failovers", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.chats, args.messages, args.delay_chats, args.failovers))
