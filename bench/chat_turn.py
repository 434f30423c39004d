"""The turn's own overhead per step: tool gathering (warm ETag cache, 200 workspace tools),
persistence, publishing and the lease bookkeeping every replica does (claim, turn start, calls noted
before they run, give back), with a model that answers at once. The server's own parts, as the
single-process (SQLite) server wires them; each turn is posted and waited for through the event log.

A stub agent serves 200 tools over real HTTP (304 on a current ETag) and answers calls at once;
the model is pydantic-ai's FunctionModel calling one workspace tool per step. Reported per step:
the whole step, and its parts the turn itself owns (store, publish) next to those it does not
(the model library, the tool's HTTP round trip).

    python bench/chat_turn.py [--turns 20] [--steps 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from workdock.chat.eventlog import ChatChannel, EventLog
from workdock.chat.models import ModelCatalog
from workdock.chat.notify import LocalNotifier
from workdock.chat.scheduler import Scheduler
from workdock.chat.store.db import create_engine, migrate, sqlite_url
from workdock.chat.store.leases import Leases
from workdock.chat.store.repo import Store
from workdock.chat.tools.workspace import AgentPool
from workdock.chat.toolset import ToolGatherer
from workdock.chat.turn import TurnRunner
from workdock.secretbox import SecretBox, new_key, parse_key

TOOLS = [
    {
        "server_name": f"s{i % 10}",
        "name": f"s{i % 10}__tool_{i}",
        "original_name": f"tool_{i}",
        "description": f"tool number {i}",
        "schema": {"x": {"type": "string"}},
        "required": [],
        "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}},
    }
    for i in range(200)
]


def stub_agent(port: int) -> uvicorn.Server:
    async def tools(request: Request) -> Response:
        if request.headers.get("if-none-match") == "1":
            return Response(status_code=304, headers={"ETag": "1"})
        return JSONResponse({"version": "1", "tools": TOOLS}, headers={"ETag": "1"})

    async def call(request: Request) -> Response:
        body = await request.json()
        return JSONResponse(
            {"content": [{"type": "text", "text": f"ok {body['tool_name']}"}], "is_error": False}
        )

    app = Starlette(
        routes=[Route("/api/v0/mcp/tools", tools), Route("/api/v0/mcp/call-tool", call, methods=["POST"])]
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def main(turns: int, steps: int) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    agent = stub_agent(port)
    model_s: list[float] = []

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        started = time.perf_counter()
        done = 0  # tool results since this turn's user message
        for message in messages:
            if isinstance(message, ModelRequest):
                if any(isinstance(p, UserPromptPart) for p in message.parts):
                    done = 0
                done += sum(1 for p in message.parts if isinstance(p, ToolReturnPart))
        model_s.append(time.perf_counter() - started)
        if done < steps - 1:
            yield {0: DeltaToolCall(name="s1__tool_1", json_args='{"x": "y"}', tool_call_id=f"c{done}")}
        else:
            yield "finished"

    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(sqlite_url(Path(tmp) / "bench.db"))
        box = SecretBox(parse_key(new_key()))
        await migrate(engine, box)
        store = Store(engine, box)
        # The single-process server's parts, as the app wires them: the same scheduler, leases and
        # event log as a replica's, with the in-process notifier.
        notifier = LocalNotifier()
        events = EventLog(store, notifier)
        leases = Leases(store, ttl=30)
        pool = AgentPool()
        gatherer = ToolGatherer(pool, None)
        models = ModelCatalog(["bench:fn"])
        models._built["bench:fn"] = FunctionModel(stream_function=stream)
        runner = TurnRunner(store, gatherer, models, leases=leases, owner="bench")
        scheduler = Scheduler(store, runner, events, notifier, "bench", leases=leases)
        await scheduler.start(None)

        timings: dict[str, list[float]] = {
            "gather": [],
            "store": [],
            "publish": [],
            "tool_call": [],
            "leases": [],  # claim, turn start, calls noted, give back: the replica bookkeeping
        }
        original_gather = gatherer.gather

        async def timed_gather(*args: Any) -> Any:
            started = time.perf_counter()
            result = await original_gather(*args)
            timings["gather"].append(time.perf_counter() - started)
            result.tools = dict(result.tools)  # the gatherer shares its dict between turns: wrap a copy
            for name, tool in list(result.tools.items()):

                async def call(arguments: dict[str, Any], reporter: Any, _call: Any = tool.call) -> Any:
                    started = time.perf_counter()
                    try:
                        return await _call(arguments, reporter)
                    finally:
                        timings["tool_call"].append(time.perf_counter() - started)

                result.tools[name] = type(tool)(**{**tool.__dict__, "call": call})
            return result

        def timed(bucket: str, method: Any) -> Any:
            async def run(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await method(*args, **kwargs)
                finally:
                    timings[bucket].append(time.perf_counter() - started)

            return run

        gatherer.gather = timed_gather  # type: ignore[method-assign]
        store.add_messages = timed("store", store.add_messages)  # type: ignore[method-assign]
        store.start_next_turn = timed("leases", store.start_next_turn)  # type: ignore[method-assign]
        for name in ("claim", "release", "record_calls"):
            setattr(leases, name, timed("leases", getattr(leases, name)))
        original_publish = ChatChannel.publish

        def timed_publish(channel: ChatChannel, chunk: Any) -> Any:
            started = time.perf_counter()
            try:
                return original_publish(channel, chunk)
            finally:
                timings["publish"].append(time.perf_counter() - started)

        ChatChannel.publish = timed_publish  # type: ignore[method-assign]

        user = await store.create_user("bench")
        workspace = await store.create_workspace(user.id, "w", f"http://127.0.0.1:{port}", "t")
        chat = await store.create_chat(user.id, workspace.id, title="b", model="bench:fn")

        async def one_turn(content: str) -> None:
            """Post a message and wait, as a watcher does, for the turn's end in the stream."""
            fresh = await store.get_chat(chat.id)
            assert fresh is not None
            after, _ = await events.start_point(fresh, None, running=False)
            await scheduler.submit(chat.id, content)
            async for event in events.watch(chat.id, after):
                if b'"data-status"' in event.data and b'"running"' not in event.data:
                    return

        # Warm up: the first gather fills the ETag cache, the first turn warms the connection pools.
        await one_turn("warm up")
        for values in timings.values():
            values.clear()
        model_s.clear()
        per_step: list[float] = []
        for _ in range(turns):
            started = time.perf_counter()
            await one_turn("go")
            per_step.append((time.perf_counter() - started) / steps)
        await scheduler.shutdown()
        # A turn that failed would be quick and wrong: every turn must have run all its steps.
        final = await store.get_chat(chat.id)
        stored = await store.list_messages(chat.id)
        assert final is not None and final.status == "idle", f"the last turn ended {final and final.status}"
        assert len(stored) == (turns + 1) * (2 * steps), f"{len(stored)} messages stored"
        await events.aclose()
        await pool.aclose()
        store.close()
        await engine.dispose()
    agent.should_exit = True

    ms = 1000.0
    step_total = statistics.mean(per_step) * ms
    gather_per_step = sum(timings["gather"]) / (turns * steps) * ms
    store_per_step = sum(timings["store"]) / (turns * steps) * ms
    publish_per_step = sum(timings["publish"]) / (turns * steps) * ms
    tool_per_step = sum(timings["tool_call"]) / (turns * steps) * ms
    print(f"turns: {turns} x {steps} steps, 200 workspace tools, SQLite")
    print(
        f"gather (warm ETag cache, 304)   p50 {pct(timings['gather'], 0.5) * ms:6.2f} ms  "
        f"p99 {pct(timings['gather'], 0.99) * ms:6.2f} ms per turn"
    )
    print(
        f"store one step (1 transaction)  p50 {pct(timings['store'], 0.5) * ms:6.2f} ms  "
        f"p99 {pct(timings['store'], 0.99) * ms:6.2f} ms"
    )
    print(
        f"publish                         {publish_per_step:6.3f} ms per step "
        f"({len(timings['publish']) / (turns * steps):.0f} events)"
    )
    leases_per_step = sum(timings["leases"]) / (turns * steps) * ms
    print(
        f"leases and turn start           {leases_per_step:6.2f} ms per step "
        f"({sum(timings['leases']) / turns * ms:.2f} ms per turn: claim, start, calls noted, give back)"
    )
    own = gather_per_step + store_per_step + publish_per_step + leases_per_step
    print(
        f"turn's own overhead per step    {own:6.2f} ms  (gather {gather_per_step:.2f} + store "
        f"{store_per_step:.2f} + publish {publish_per_step:.3f} + leases {leases_per_step:.2f}); target <= 5 ms"
    )
    print(
        f"whole step, for reference       {step_total:6.2f} ms  (includes the model library and the "
        f"tool's HTTP round trip: {tool_per_step:.2f} ms)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.steps))
