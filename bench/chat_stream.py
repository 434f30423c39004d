"""Streaming latency of the chat server, with a fake OpenAI-compatible model answering at once.

1. First SSE chunk after the POST: a watcher is subscribed, the message is POSTed, and we time
   the first chunk of the turn (and the first text delta, which includes the model round trip).
2. 50 chats streaming at once on one server: every text delta carries the monotonic time the
   fake model sent it; the delay to the watcher receiving it is reported (p50/p99/max).

The chat server runs as its own process (SQLite in a temporary data dir); the fake model and
the watchers run in this process. Everything listens on 127.0.0.1.

    python bench/chat_stream.py [--chats 50] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.chat.fake_openai import FakeOpenAI, Reply, _chunk  # noqa: E402

CHUNKS = 20
CHUNK_INTERVAL_S = 0.005


class TimestampedModel(FakeOpenAI):
    """Each text delta is the monotonic send time in ns, so the watcher can measure the delay."""

    async def _stream(self, reply: Reply):
        yield _chunk({"role": "assistant", "content": ""})
        for _ in range(CHUNKS):
            yield _chunk({"content": f"{time.perf_counter_ns()} "})
            await asyncio.sleep(CHUNK_INTERVAL_S)
        yield _chunk({}, finish="stop")
        yield b"data: [DONE]\n\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def watch(http: httpx2.AsyncClient, chat_id: str, subscribed: asyncio.Event, on_event: Any) -> None:
    async with http.stream("GET", f"/api/v0/chats/{chat_id}/stream", timeout=None) as response:
        data: list[str] = []
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                event = json.loads("\n".join(data))
                data = []
                if not subscribed.is_set():
                    subscribed.set()  # the idle snapshot
                    continue
                if on_event(event):
                    return


async def new_chat(http: httpx2.AsyncClient, workspace_id: str) -> str:
    response = await http.post("/api/v0/chats", json={"workspace_id": workspace_id})
    return response.json()["id"]


async def first_chunk(
    http: httpx2.AsyncClient, workspace_id: str, rounds: int
) -> tuple[list[float], list[float]]:
    first, first_text = [], []
    for _ in range(rounds):
        chat_id = await new_chat(http, workspace_id)
        subscribed = asyncio.Event()
        marks: dict[str, float] = {}

        def on_event(event: dict[str, Any], marks: dict[str, float] = marks) -> bool:
            now = time.perf_counter()
            marks.setdefault("first", now)
            if event["type"] == "text-delta":
                marks.setdefault("text", now)
            return event["type"] == "finish"

        task = asyncio.create_task(watch(http, chat_id, subscribed, on_event))
        await subscribed.wait()
        sent = time.perf_counter()
        await http.post(f"/api/v0/chats/{chat_id}/messages", json={"content": "hi"})
        await task
        first.append((marks["first"] - sent) * 1000)
        first_text.append((marks["text"] - sent) * 1000)
    return first, first_text


async def many_chats(http: httpx2.AsyncClient, workspace_id: str, chats: int) -> tuple[list[float], float]:
    ids = [await new_chat(http, workspace_id) for _ in range(chats)]
    delays: list[float] = []
    subscribed = [asyncio.Event() for _ in ids]

    def on_event(event: dict[str, Any]) -> bool:
        if event["type"] == "text-delta" and event["delta"].strip():
            delays.append((time.perf_counter_ns() - int(event["delta"])) / 1e6)
        return event["type"] == "finish"

    tasks = [
        asyncio.create_task(watch(http, chat_id, ready, on_event))
        for chat_id, ready in zip(ids, subscribed, strict=True)
    ]
    await asyncio.gather(*(ready.wait() for ready in subscribed))
    started = time.perf_counter()
    await asyncio.gather(*(http.post(f"/api/v0/chats/{c}/messages", json={"content": "go"}) for c in ids))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
    return delays, time.perf_counter() - started


async def main(chats: int, rounds: int) -> None:
    model = TimestampedModel()
    model.start(free_port())
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "OPENAI_BASE_URL": model.url,
            "OPENAI_API_KEY": "bench",
            "WORKDOCK_MODELS": "openai:bench",
        }
        log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115 - closed after the server stops
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workdock.chat.cli_server",
                "--listen",
                f"127.0.0.1:{port}",
                "--data-dir",
                tmp,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            token_file = Path(tmp) / "admin.token"
            deadline = time.monotonic() + 30
            while not token_file.exists() or not token_file.read_text().strip():
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the chat server did not start")
                await asyncio.sleep(0.05)
            limits = httpx2.Limits(max_connections=chats * 2 + 10, max_keepalive_connections=chats * 2 + 10)
            async with httpx2.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                timeout=30,
                limits=limits,
                headers={"Authorization": f"Bearer {token_file.read_text().strip()}"},
            ) as http:
                while True:
                    try:
                        if (await http.get("/healthz")).status_code == 200:
                            break
                    except httpx2.TransportError:
                        await asyncio.sleep(0.05)
                workspace = (
                    await http.post(
                        "/api/v0/workspaces",
                        json={
                            "name": "bench",
                            "agent_url": f"http://127.0.0.1:{free_port()}",
                            "agent_token": "x",
                        },
                    )
                ).json()
                await first_chunk(http, workspace["id"], 3)  # warm up
                first, first_text = await first_chunk(http, workspace["id"], rounds)
                delays, took = await many_chats(http, workspace["id"], chats)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
            log.close()
            model.stop()
    print(
        f"first SSE chunk after the POST  p50 {pct(first, 0.5):6.2f} ms  p99 {pct(first, 0.99):6.2f} ms  "
        f"(n={rounds}; target <= 20 ms)"
    )
    print(
        f"first text delta after the POST p50 {pct(first_text, 0.5):6.2f} ms  p99 {pct(first_text, 0.99):6.2f} ms  "
        f"(includes the model round trip; no workspace agent reachable)"
    )
    print(
        f"{chats} chats streaming at once: {len(delays)} deltas in {took:.2f} s; model→watcher delay "
        f"p50 {pct(delays, 0.5):6.2f} ms  p99 {pct(delays, 0.99):6.2f} ms  max {max(delays):6.2f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.chats, args.rounds))
