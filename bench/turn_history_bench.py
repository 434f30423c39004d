"""A turn's own overhead against the length of the chat: 10, 100, 1,000 and 5,000 stored messages,
on SQLite and on PostgreSQL (a throwaway server, as the tests start one).

The server's own parts as the app wires them (scheduler, leases, event log, turn runner), a stub
agent with a few tools, and pydantic-ai's FunctionModel answering at once with a line of text.
A turn is posted and waited for through the event log. Reported per size: the turn's own
overhead (the whole turn less the time inside the model library, whose own handling of a long
history is not ours), its ratio to the overhead at 10 messages, and the same without the history
kept between turns (the kept copy forgotten before each turn: the turn loads and converts the
whole history, as before) in the same run, interleaved.

    python bench/turn_history_bench.py [--turns 5] [--rounds 8] [--sizes 10,100,1000,5000] [--sqlite-only]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo, DeltaToolCalls, FunctionModel
from sqlalchemy import insert
from sqlalchemy.engine import Connection
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.helpers import free_port  # noqa: E402
from tests.support.postgres import start_postgres, unavailable  # noqa: E402
from workdock.chat import turn as turn_module  # noqa: E402
from workdock.chat.eventlog import EventLog  # noqa: E402
from workdock.chat.history_cache import HistoryCache  # noqa: E402
from workdock.chat.models import ModelCatalog  # noqa: E402
from workdock.chat.notify import LocalNotifier  # noqa: E402
from workdock.chat.scheduler import Scheduler  # noqa: E402
from workdock.chat.store.db import create_engine, migrate, sqlite_url  # noqa: E402
from workdock.chat.store.leases import Leases  # noqa: E402
from workdock.chat.store.models import Message, utcnow  # noqa: E402
from workdock.chat.store.repo import Store  # noqa: E402
from workdock.chat.tools.workspace import AgentPool  # noqa: E402
from workdock.chat.toolset import ToolGatherer  # noqa: E402
from workdock.chat.turn import TurnRunner  # noqa: E402
from workdock.secretbox import SecretBox, new_key, parse_key  # noqa: E402

TOOLS = [
    {
        "server_name": "s",
        "name": f"s__tool_{i}",
        "original_name": f"tool_{i}",
        "description": f"tool number {i}",
        "schema": {"x": {"type": "string"}},
        "required": [],
        "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}},
    }
    for i in range(10)
]
RESULT = "a line of a tool's output, as a file listing or a test run gives it\n" * 4


def stub_agent(port: int) -> uvicorn.Server:
    async def tools(request: Request) -> Response:
        if request.headers.get("if-none-match") == "1":
            return Response(status_code=304, headers={"ETag": "1"})
        return JSONResponse({"version": "1", "tools": TOOLS}, headers={"ETag": "1"})

    app = Starlette(routes=[Route("/api/v0/mcp/tools", tools)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server


def seed_rows(chat_id: str, count: int) -> list[dict[str, Any]]:
    """``count`` messages of turns as chats have them: a question, a tool call, its result, an answer."""
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for i in range(count):
        kind = i % 4
        call_id = f"seed{i // 4}"
        if kind == 0:
            role, parts = "user", [{"type": "text", "text": f"question {i}: what does the test run say?"}]
        elif kind == 1:
            role = "assistant"
            parts = [
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool-call",
                    "tool_call_id": call_id,
                    "tool_name": "s__tool_1",
                    "source": "workspace",
                    "server": "s",
                    "args": {"x": str(i)},
                },
            ]
        elif kind == 2:
            role = "tool"
            parts = [
                {
                    "type": "tool-result",
                    "tool_call_id": call_id,
                    "tool_name": "s__tool_1",
                    "is_error": False,
                    "content": [{"type": "text", "text": RESULT}],
                    "duration_ms": 3,
                }
            ]
        else:
            role, parts = "assistant", [{"type": "text", "text": f"It passed ({i})."}]
        rows.append(
            {
                "chat_id": chat_id,
                "role": role,
                "parts": parts,
                "model": "bench:fn" if role == "assistant" else None,
                "usage": None,
                "superseded": False,
                "created_at": now,
            }
        )
    return rows


class Library:
    """Times spent inside pydantic-ai's model_request_stream (the model library's share of a turn)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._original = turn_module.model_request_stream

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        original = self._original

        @contextlib.asynccontextmanager
        async def timed(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            started = time.perf_counter()
            try:
                async with original(*args, **kwargs) as stream:
                    yield stream
            finally:
                self.seconds.append(time.perf_counter() - started)

        turn_module.model_request_stream = timed  # type: ignore[assignment]
        try:
            yield
        finally:
            turn_module.model_request_stream = original


async def overheads(
    url: str, port: int, sizes: list[int], turns: int, rounds: int, library: Library
) -> dict[tuple[int, bool], list[float]]:
    """A turn's own overhead (ms) in a chat of each size, with the history kept and reloaded.

    One server's parts and a chat per size; the sizes and both ways take turns, ``rounds`` times
    ``turns`` turns each, so that the machine's changing load falls on all of them alike.
    "Reloaded" forgets the chat's kept copy before each turn: the turn loads and converts the
    whole history, as every turn did before the copy was kept.
    """

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        yield "done"

    engine = create_engine(url)
    box = SecretBox(parse_key(new_key()))
    await migrate(engine, box)
    store = Store(engine, box)
    notifier = LocalNotifier()
    events = EventLog(store, notifier)
    leases = Leases(store, ttl=30)
    pool = AgentPool()
    models = ModelCatalog(["bench:fn"])
    models._built["bench:fn"] = FunctionModel(stream_function=stream)
    cache = HistoryCache()
    runner = TurnRunner(store, ToolGatherer(pool, None), models, leases=leases, owner="bench", history=cache)
    scheduler = Scheduler(store, runner, events, notifier, "bench", leases=leases)
    await scheduler.start(None)
    try:
        user = await store.create_user("bench")
        workspace = await store.create_workspace(user.id, "w", f"http://127.0.0.1:{port}", "t")
        chats: dict[int, str] = {}
        for size in sizes:
            chat = await store.create_chat(user.id, workspace.id, title="b", model="bench:fn")
            rows = seed_rows(chat.id, size)

            def seed(connection: Connection, rows: list[dict[str, Any]] = rows) -> None:
                connection.execute(insert(Message), rows)

            await store.write(seed)
            chats[size] = chat.id

        async def one_turn(chat_id: str) -> float:
            fresh = await store.get_chat(chat_id)
            assert fresh is not None
            after, _ = await events.start_point(fresh, None, running=False)
            library.seconds.clear()
            started = time.perf_counter()
            await scheduler.submit(chat_id, "go")
            async for event in events.watch(chat_id, after):
                if b'"data-status"' in event.data and b'"running"' not in event.data:
                    break
            return (time.perf_counter() - started - sum(library.seconds)) * 1000

        for chat_id in chats.values():  # warm up: connection pools, the ETag cache, the kept copy
            for _ in range(2):
                await one_turn(chat_id)
        own: dict[tuple[int, bool], list[float]] = {
            (size, kept): [] for size in sizes for kept in (True, False)
        }
        for _ in range(rounds):
            for size, chat_id in chats.items():
                for kept in (True, False):
                    for _ in range(turns):
                        if not kept:
                            cache.forget(chat_id)
                        own[size, kept].append(await one_turn(chat_id))
        for size, chat_id in chats.items():
            stored = await store.list_messages(chat_id)
            expected = size + 2 * (2 + 2 * rounds * turns)
            assert len(stored) == expected, f"{len(stored)} messages stored, not {expected}: a turn failed"
        return own
    finally:
        await scheduler.shutdown()
        await events.aclose()
        await pool.aclose()
        store.close()
        await engine.dispose()


async def measure(name: str, url: str, port: int, sizes: list[int], turns: int, rounds: int) -> None:
    library = Library()
    with library.installed():
        own = await overheads(url, port, sizes, turns, rounds, library)
    count = rounds * turns
    print(f"{name}: a turn's own overhead, p50 of {count} turns each (the model answers at once)")
    print(f"  {'messages':>8}  {'kept':>9}  {'ratio':>6}  {'reloaded':>9}  {'ratio':>6}  kept vs reloaded")
    p50 = {key: statistics.median(values) for key, values in own.items()}
    first = sizes[0]
    for size in sizes:
        kept, reloaded = p50[size, True], p50[size, False]
        print(
            f"  {size:>8}  {kept:7.2f}ms  {kept / p50[first, True]:5.2f}x  {reloaded:7.2f}ms  "
            f"{reloaded / p50[first, False]:5.2f}x  {kept / reloaded:5.2f}x",
            flush=True,
        )
    print(f"  target: at 1,000 messages <= 1.5x the overhead at {first} (kept)")


async def main(turns: int, rounds: int, sizes: list[int], sqlite_only: bool) -> None:
    port = free_port()
    agent = stub_agent(port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            await measure("SQLite", sqlite_url(Path(tmp) / "bench.db"), port, sizes, turns, rounds)
        if sqlite_only:
            return
        why = unavailable()
        if why:
            print(f"PostgreSQL: not measured ({why})")
            return
        pg_iter = start_postgres(free_port())
        pg = next(pg_iter)
        try:
            await measure("PostgreSQL", pg.create_database("bench"), port, sizes, turns, rounds)
        finally:
            with contextlib.suppress(StopIteration):
                next(pg_iter)
    finally:
        agent.should_exit = True


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=5, help="turns in a row for one size and way")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--sizes", default="10,100,1000,5000")
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.rounds, [int(s) for s in args.sizes.split(",")], args.sqlite_only))
