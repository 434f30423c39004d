"""What the agent link costs against direct HTTP to the same agent, and what 200 links cost.

    .venv/bin/python bench/link_bench.py [--calls 1000] [--links 200] [--skip-many]

1. One real `workdock agent --server URL --listen HOST:PORT` with an echo MCP server (stdio).
   The chat server runs in this process; its own AgentClient calls the agent two ways in the same
   run, interleaved: direct HTTP to the agent's port, and through the link (the chat server's
   link transport → WebSocket → the agent's ASGI app). Measured: call-tool (small), fs/read of a
   1 MB file (the answer is the first 256 KiB: fs/read's cap per read), and call-tool echoing
   1 MB each way; p50 latency and throughput with 16 calls in flight (median of 5 alternating
   rounds). Ratios printed: targets p50 link ≤ 1.3× direct, throughput ≥ 70 % of direct.
2. 200 links to one chat server (a child process): link clients, 50 to a process, each the real
   dialler (`workdock.link.dialer.run_link`) in front of a tiny ASGI app rather than a whole agent.
   Reported: the server's memory per link, the clients' memory per link, and the time until all
   are connected again after the server restarts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx2
import psutil
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
ECHO_SERVER = ROOT / "tests" / "fixtures" / "servers" / "slow_tool.py"
MB = 1024 * 1024


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# ---- 1. one agent, two ways in ----------------------------------------------------------------------


async def latency(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    times = []
    for _ in range(n):
        began = time.perf_counter()
        await call()
        times.append((time.perf_counter() - began) * 1000)
    return times


async def throughput(call: Callable[[], Awaitable[Any]], total: int, in_flight: int = 16) -> float:
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return total / (time.perf_counter() - began)


async def compare(name: str, call: Callable[[Any], Awaitable[Any]], n: int, direct: Any, linked: Any) -> str:
    """One table row: p50 and 16-in-flight throughput, direct and through the link, interleaved."""
    await latency(lambda: call(direct), 20)  # warm both ways
    await latency(lambda: call(linked), 20)
    d_times: list[float] = []
    l_times: list[float] = []
    for _ in range(5):  # alternating, so both see the same machine load
        d_times += await latency(lambda: call(direct), max(1, n // 5))
        l_times += await latency(lambda: call(linked), max(1, n // 5))
    d_rates, l_rates = [], []
    for _ in range(5):
        d_rates.append(await throughput(lambda: call(direct), max(16, n // 2)))
        l_rates.append(await throughput(lambda: call(linked), max(16, n // 2)))
    dp, lp = statistics.median(d_times), statistics.median(l_times)
    dr, lr = statistics.median(d_rates), statistics.median(l_rates)
    return f"| {name} | {dp:.2f} ms | {lp:.2f} ms | **{lp / dp:.2f}×** | {dr:.0f} | {lr:.0f} | **{lr / dr:.0%}** |"


async def speed(calls: int) -> None:
    from workdock.agentapi import AgentClient
    from workdock.chat.app import create_app
    from workdock.chat.services import ServerConfig
    from workdock.chat.store.repo import Store

    tmp = Path(tempfile.mkdtemp(prefix="link-bench-"))
    workspace = tmp / "ws"
    workspace.mkdir()
    (workspace / ".mcp.json").write_text(
        json.dumps({"mcpServers": {"echo": {"command": sys.executable, "args": [str(ECHO_SERVER)]}}})
    )
    (workspace / "big.txt").write_text(("x" * 99 + "\n") * (MB // 100))
    app = create_app(ServerConfig(data_dir=tmp / "data", quiet=True))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    svc = app.state.services
    store: Store = svc.store
    admin = (await store.list_users())[0]
    record, token = await store.create_linked_workspace(admin.id, "bench")
    agent_port = free_port()
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workdock.cli",
            "agent",
            "--server",
            f"http://127.0.0.1:{port}",
            "--listen",
            f"127.0.0.1:{agent_port}",
            "--dir",
            str(workspace),
        ],
        env={**os.environ, "WORKDOCK_AGENT_TOKEN": token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    direct = AgentClient(f"http://127.0.0.1:{agent_port}", token)
    try:
        linked = svc.pool.client(record)

        async def ready() -> bool:
            try:
                return any(t.name == "echo__echo" for t in (await linked.list_tools()).tools)
            except Exception:
                return False

        await wait_for(ready, 60, "the linked agent and its echo server")
        mb_text = "y" * MB
        cases: list[tuple[str, Callable[[AgentClient], Awaitable[Any]], int]] = [
            ("call-tool echo (small)", lambda c: c.call_tool("echo__echo", {"text": "ping"}), calls),
            (
                "fs/read of a 1 MB file (256 KiB answer)",
                lambda c: c.read_file("big.txt", limit=100_000),
                calls // 4,
            ),
            (
                "call-tool echo 1 MB each way",
                lambda c: c.call_tool("echo__echo", {"text": mb_text}),
                calls // 20,
            ),
        ]
        print(
            "| what | direct p50 | link p50 | ratio (≤ 1.3×) | direct /s (16 in flight) | link /s | link/direct (≥ 70 %) |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, call, n in cases:
            print(await compare(name, call, n, direct, linked))
    finally:
        await direct.aclose()
        os.killpg(agent.pid, signal.SIGTERM)
        agent.wait(15)
        server.should_exit = True
        await serving


# ---- 2. many links ------------------------------------------------------------------------------------

CLIENT_CODE = r"""
import asyncio, json, sys
from workdock.link.dialer import LinkSettings, run_link

SERVERS = json.dumps({"servers": [], "config_files": []}).encode()

async def app(scope, receive, send):
    # The least an agent answers: GET /api/v0/mcp/servers for the status page.
    while (await receive())["type"] == "http.request":
        break
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(SERVERS)).encode())]})
    await send({"type": "http.response.body", "body": SERVERS})

async def main():
    url, tokens = sys.argv[1], sys.argv[2:]
    await asyncio.to_thread(sys.stdin.readline)  # dial when told: the memory before is measured first
    await asyncio.gather(*(run_link(app, LinkSettings(url, t)) for t in tokens))

asyncio.run(main())
"""


def start_server(port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workdock.chat.cli_server",
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def connected_count(http: httpx2.AsyncClient) -> int:
    try:
        response = await http.get("/api/v0/workspaces", timeout=30)
    except httpx2.TransportError:
        return -1
    if response.status_code != 200:
        return -1
    return sum(1 for w in response.json()["workspaces"] if w["agent"]["connected"])


async def many(links: int, per_process: int = 50) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="link-many-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, tmp / "data")
    clients: list[subprocess.Popen[bytes]] = []
    try:

        async def up() -> bool:
            try:
                return httpx2.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx2.TransportError:
                return False

        await wait_for(up, 60, "the chat server")
        admin_token = (tmp / "data" / "admin.token").read_text().strip()
        http = httpx2.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {admin_token}"})
        tokens = []
        for i in range(links):
            created = (await http.post("/api/v0/workspaces", json={"name": f"ws{i}"})).json()
            tokens.append(created["agent_token"])
        await asyncio.sleep(1)
        server_before = psutil.Process(server.pid).memory_info().rss
        for start in range(0, links, per_process):
            clients.append(
                subprocess.Popen(
                    [sys.executable, "-c", CLIENT_CODE, url, *tokens[start : start + per_process]],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        await asyncio.sleep(3)  # imports done, waiting to dial
        client_before = sum(psutil.Process(c.pid).memory_info().rss for c in clients)
        began = time.monotonic()
        for client in clients:
            assert client.stdin is not None
            client.stdin.write(b"go\n")
            client.stdin.flush()

        async def all_connected() -> bool:
            return await connected_count(http) == links

        await wait_for(all_connected, 120, f"{links} links")
        first = time.monotonic() - began
        await asyncio.sleep(2)
        server_after = psutil.Process(server.pid).memory_info().rss
        client_after = sum(psutil.Process(c.pid).memory_info().rss for c in clients)

        server.send_signal(signal.SIGTERM)
        server.wait(20)
        stopped = time.monotonic()
        server = start_server(port, tmp / "data")
        await wait_for(up, 60, "the restarted chat server")
        restarted = time.monotonic()
        await wait_for(all_connected, 180, f"{links} links after the restart")
        back = time.monotonic()
        await http.aclose()
        print(f"| {links} links connected from a cold start | {first:.1f} s |")
        print(
            f"| chat server memory per link (RSS growth / links) | {(server_after - server_before) / links / 1024:.0f} KiB |"
        )
        print(
            f"| link client memory per link (RSS growth of {len(clients)} client processes / links) | "
            f"{(client_after - client_before) / links / 1024:.0f} KiB |"
        )
        print(
            f"| all {links} connected again after a server restart | {back - restarted:.1f} s after it answered "
            f"({back - stopped:.1f} s after it stopped) |"
        )
    finally:
        for process in [*clients, server]:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--links", type=int, default=200)
    parser.add_argument("--skip-many", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    if not args.skip_speed:
        asyncio.run(speed(args.calls))
    if not args.skip_many:
        print()
        print("| what | figure |")
        print("| --- | --- |")
        asyncio.run(many(args.links))


if __name__ == "__main__":
    main()
