"""Peak memory of the agent and the chat server while large tool results pass through them.

    .venv/bin/python bench/memory_bench.py [--sizes 1,10,16]

A real agent (a `huge_result` stdio server: a text result of N MB, one JSON-RPC line) and a real
chat server (SQLite, a scripted OpenAI-compatible model that calls the tool once, then answers)
each run as their own process; psutil samples both processes' RSS every 5 ms. For each size:
RSS before, the peak during the turn (the result goes agent → chat server → database → model),
and RSS 2 s after it ended (what was given back). Then a 10 MB file in the workspace is paged
through with `POST /api/v0/fs/read` (a read is cut at 256 KiB by design): calls, time, and the
agent's peak. The MCP-result limit is the default 16 MiB.
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
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.chat.fake_openai import Call, FakeOpenAI, Reply  # noqa: E402

HUGE = ROOT / "tests" / "fixtures" / "servers" / "huge_result.py"
TOKEN = "bench-token"
MB = 1_000_000
SAMPLE_S = 0.005
SETTLE_S = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Peaks:
    """RSS of some processes, sampled in a thread; ``peak`` since the last ``reset``."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss(self) -> dict[str, int]:
        return {name: p.memory_info().rss for name, p in self.processes.items()}

    def reset(self) -> dict[str, int]:
        now = self.rss()
        self.peak = dict(now)
        return now

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            for name, value in self.rss().items():
                self.peak[name] = max(self.peak[name], value)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return
        except httpx2.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def mib(value: int) -> str:
    return f"{value / 2**20:6.0f}"


async def run(sizes: list[int]) -> None:
    model = FakeOpenAI()
    model.start(free_port())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        workspace = work / "workspace"
        workspace.mkdir()
        (workspace / ".mcp.json").write_text(
            json.dumps({"mcpServers": {"huge": {"command": sys.executable, "args": [str(HUGE)]}}})
        )
        line = "x" * 99 + "\n"
        (workspace / "big.txt").write_text(line * (10 * MB // len(line)))
        agent_port, chat_port = free_port(), free_port()
        agent = start(
            [
                sys.executable,
                "-m",
                "workdock.cli",
                "agent",
                "--dir",
                str(workspace),
                "--listen",
                f"127.0.0.1:{agent_port}",
            ],
            {**os.environ, "WORKDOCK_AGENT_TOKEN": TOKEN},
            work / "agent.log",
        )
        chat = start(
            [
                sys.executable,
                "-m",
                "workdock.chat.cli_server",
                "--listen",
                f"127.0.0.1:{chat_port}",
                "--data-dir",
                str(work / "chat"),
            ],
            {
                **os.environ,
                "OPENAI_BASE_URL": model.url,
                "OPENAI_API_KEY": "bench",
                "WORKDOCK_MODELS": "openai:bench",
            },
            work / "chat.log",
        )
        peaks: Peaks | None = None
        try:
            agent_http = httpx2.AsyncClient(
                base_url=f"http://127.0.0.1:{agent_port}",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=120,
            )

            async def agent_ready() -> bool:
                servers = (await agent_http.get("/api/v0/mcp/servers")).json()["servers"]
                return bool(servers) and servers[0]["state"] == "ready"

            await wait_until(agent_ready, 120, "the agent's server")
            token_file = work / "chat" / "admin.token"

            async def chat_ready() -> bool:
                return token_file.exists() and bool(token_file.read_text().strip())

            await wait_until(chat_ready, 120, "the chat server")
            chat_http = httpx2.AsyncClient(
                base_url=f"http://127.0.0.1:{chat_port}",
                headers={"Authorization": f"Bearer {token_file.read_text().strip()}"},
                timeout=120,
            )

            async def healthy() -> bool:
                return (await chat_http.get("/healthz")).status_code == 200

            await wait_until(healthy, 60, "the chat server's health")
            created = await chat_http.post(
                "/api/v0/workspaces",
                json={"name": "bench", "agent_url": f"http://127.0.0.1:{agent_port}", "agent_token": TOKEN},
            )
            workspace_id = created.json()["id"]
            peaks = Peaks({"agent": agent.pid, "chat": chat.pid})

            async def turn(call: Call) -> None:
                model.add(Reply(calls=[call]), Reply(text="done"))
                chat_id = (await chat_http.post("/api/v0/chats", json={"workspace_id": workspace_id})).json()[
                    "id"
                ]
                await chat_http.post(f"/api/v0/chats/{chat_id}/messages", json={"content": "go"})

                async def finished() -> bool:
                    state = (await chat_http.get(f"/api/v0/chats/{chat_id}")).json()
                    return state["status"] != "running" and not state["running"] and not state["queued"]

                await wait_until(finished, 300, "the turn")

            await turn(Call("huge__huge", {"bytes": 1000}))  # warm up both processes' code paths
            print("\npeak RSS (MiB) while a tool result passes agent → chat server (default limit 16 MiB)\n")
            print(
                f"{'result':>10} {'agent before':>13} {'peak':>6} {'after':>6} {'chat before':>12} {'peak':>6} {'after':>6}"
            )
            for size in sizes:
                before = peaks.reset()
                await turn(Call("huge__huge", {"bytes": size * MB}))
                peak = dict(peaks.peak)
                await asyncio.sleep(SETTLE_S)
                after = peaks.rss()
                print(
                    f"{size:>7} MB {mib(before['agent']):>13} {mib(peak['agent'])} {mib(after['agent'])}"
                    f" {mib(before['chat']):>12} {mib(peak['chat'])} {mib(after['chat'])}"
                )

            before = peaks.reset()
            began = time.perf_counter()
            calls = offset = 0
            while True:
                page = (
                    await agent_http.post(
                        "/api/v0/fs/read", json={"path": "big.txt", "offset": offset, "limit": 10**9}
                    )
                ).json()
                calls += 1
                offset = page["offset"] + page["content"].count("\n")
                if offset >= page["total_lines"]:
                    break
            took = time.perf_counter() - began
            peak = dict(peaks.peak)
            print(
                f"\npaging a 10 MB file with fs/read (256 KiB per call): {calls} calls in {took:.2f} s "
                f"({took / calls * 1000:.1f} ms a call); agent RSS {mib(before['agent']).strip()} → peak "
                f"{mib(peak['agent']).strip()} MiB"
            )
            before = peaks.reset()
            await turn(Call("read_file", {"path": "big.txt"}))
            peak = dict(peaks.peak)
            print(
                f"one read_file of it in a chat turn: agent peak {mib(peak['agent']).strip()} MiB "
                f"(before {mib(before['agent']).strip()}), chat server peak {mib(peak['chat']).strip()} MiB "
                f"(before {mib(before['chat']).strip()})"
            )
            await agent_http.aclose()
            await chat_http.aclose()
        finally:
            if peaks is not None:
                peaks.stop()
            stop(chat)
            stop(agent)
            model.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1,10,16", help="result sizes in MB (default 1,10,16)")
    args = parser.parse_args()
    asyncio.run(run([int(s) for s in args.sizes.split(",")]))


if __name__ == "__main__":
    main()
