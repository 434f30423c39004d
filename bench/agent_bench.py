"""What the agent adds to a direct MCP call, measured side by side in one run.

    .venv/bin/python bench/agent_bench.py [--calls 2000] [--quick]

1. call-tool latency and throughput: the same server-everything stdio server,
   called by a direct in-process `mcp` client and through the agent's
   `POST /api/v0/mcp/call-tool` (keep-alive HTTP); ratios printed.
2. `GET /api/v0/mcp/tools` with 500 tools, and its 304.
3. 20 stdio servers: time until all are ready, against the slowest alone.
4. The agent's own memory with 20 servers connected (children excluded).

The agent runs as a real `workdock agent` process; the HTTP client is a small
keep-alive HTTP/1.1 client so that the client library's cost does not count
against the agent (httpx2's figures are printed too, for reference).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
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
from mcp import Client, StdioServerParameters

from workdock.agent.child_env import workspace_env
from workdock.mcp.config import parse_entry
from workdock.mcp.hub import Hub

ROOT = Path(__file__).resolve().parent.parent
EVERYTHING = ROOT / "tests" / "node_modules" / ".bin" / "mcp-server-everything"
RAW_SERVER = ROOT / "bench" / "servers" / "raw_server.py"
TOKEN = "bench-token"


# ---- a lean keep-alive HTTP/1.1 client ------------------------------------------------------------


class KeepAlive:
    """One persistent connection; requests go one after another, as a browser or SDK would send them."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, port: int) -> KeepAlive:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer, f"127.0.0.1:{port}")

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: str = ""
    ) -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        payload = await self.reader.readexactly(length) if length else b""
        return int(status_line.split()[1]), payload

    def close(self) -> None:
        self.writer.close()


# ---- the agent process ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Agent:
    def __init__(self, servers: dict[str, Any], workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / ".mcp.json").write_text(json.dumps({"mcpServers": servers}))
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workdock.cli",
                "agent",
                "--dir",
                str(workdir),
                "--listen",
                f"127.0.0.1:{self.port}",
                "--no-workspace-ops",
            ],
            env={**os.environ, "WORKDOCK_AGENT_TOKEN": TOKEN},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        with httpx2.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            while time.monotonic() < deadline:
                try:
                    servers = http.get(f"http://127.0.0.1:{self.port}/api/v0/mcp/servers").json()["servers"]
                    if sum(s["state"] == "ready" for s in servers) == count:
                        return
                except (httpx2.TransportError, KeyError):
                    pass
                time.sleep(0.1)
        raise SystemExit(f"the agent did not get {count} servers ready in {timeout} s")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        finally:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ---- measurements ---------------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(n: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    samples = []
    for _ in range(n):
        began = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - began)
    return samples


async def throughput(
    in_flight: int, total: int, make_call: Callable[[int], Callable[[], Awaitable[Any]]]
) -> float:
    """Calls per second with ``in_flight`` callers sharing ``total`` calls."""
    per_worker = total // in_flight

    async def worker(index: int) -> None:
        call = make_call(index)
        for _ in range(per_worker):
            await call()

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(in_flight)))
    return per_worker * in_flight / (time.perf_counter() - began)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


async def call_tool_figures(agent: Agent, calls: int) -> dict[str, float]:
    body = json.dumps({"tool_name": "ev__echo", "arguments": {"message": "hello"}}).encode()
    params = StdioServerParameters(command=str(EVERYTHING), env=dict(os.environ))
    async with Client(params) as direct:

        async def direct_call() -> None:
            await direct.session.call_tool("echo", {"message": "hello"})

        lean = await KeepAlive.open(agent.port)

        async def agent_call() -> None:
            status, _ = await lean.request("POST", "/api/v0/mcp/call-tool", body)
            assert status == 200, status

        async with httpx2.AsyncClient(
            base_url=f"http://127.0.0.1:{agent.port}", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http:

            async def httpx_call() -> None:
                response = await http.post("/api/v0/mcp/call-tool", content=body)
                assert response.status_code == 200

            for warm in (direct_call, agent_call, httpx_call):
                await timed(200, warm)
            # Interleave blocks so that drift of the machine hits both sides alike.
            direct_s: list[float] = []
            agent_s: list[float] = []
            httpx_s: list[float] = []
            for _ in range(4):
                direct_s += await timed(calls // 4, direct_call)
                agent_s += await timed(calls // 4, agent_call)
                httpx_s += await timed(calls // 8, httpx_call)

        connections = [await KeepAlive.open(agent.port) for _ in range(16)]

        def agent_worker(i: int) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                status, _ = await connections[i].request("POST", "/api/v0/mcp/call-tool", body)
                assert status == 200

            return call

        # Alternating rounds, median of each side: one short round is at the mercy of the machine.
        direct_rounds: list[float] = []
        agent_rounds: list[float] = []
        for _ in range(5):
            direct_rounds.append(await throughput(16, calls, lambda _i: direct_call))
            agent_rounds.append(await throughput(16, calls, agent_worker))
        direct_tp, agent_tp = statistics.median(direct_rounds), statistics.median(agent_rounds)
        for connection in [lean, *connections]:
            connection.close()
    return {
        "direct_p50": statistics.median(direct_s),
        "agent_p50": statistics.median(agent_s),
        "direct_p99": percentile(direct_s, 0.99),
        "agent_p99": percentile(agent_s, 0.99),
        "httpx_p50": statistics.median(httpx_s),
        "direct_tp": direct_tp,
        "agent_tp": agent_tp,
    }


async def tool_list_figures(agent: Agent, n: int) -> dict[str, float]:
    client = await KeepAlive.open(agent.port)
    _, payload = await client.request("GET", "/api/v0/mcp/tools")
    listing = json.loads(payload)
    version = listing["version"]

    async def full() -> None:
        assert (await client.request("GET", "/api/v0/mcp/tools"))[0] == 200

    async def not_modified() -> None:
        assert (await client.request("GET", "/api/v0/mcp/tools", headers=f'If-None-Match: "{version}"\r\n'))[
            0
        ] == 304

    await timed(200, full)
    full_s = await timed(n, full)
    await timed(200, not_modified)
    cached_s = await timed(n, not_modified)
    client.close()
    return {
        "tools": len(listing["tools"]),
        "bytes": len(payload),
        "full_p50": statistics.median(full_s),
        "not_modified_p50": statistics.median(cached_s),
    }


async def time_to_ready(entries: list[Any]) -> float:
    async with Hub(workspace=ROOT, child_env=workspace_env, connect_timeout=120) as hub:
        began = time.perf_counter()
        await hub.apply(entries)
        while not all(s.state == "ready" for s in hub.statuses()):
            if any(s.state == "failed" for s in hub.statuses()):
                raise SystemExit(f"a server failed: {[s.error for s in hub.statuses() if s.error]}")
            await hub.wait_for_change()
        return time.perf_counter() - began


async def readiness_figures(delay: float) -> dict[str, float]:
    def raw(i: int) -> Any:
        return parse_entry(
            f"raw{i}",
            {"command": sys.executable, "args": [str(RAW_SERVER)], "env": {"START_DELAY": str(delay)}},
            os.environ,
        )

    def real(i: int) -> Any:
        if i % 2:
            return parse_entry(
                f"time{i}", {"command": sys.executable, "args": ["-m", "mcp_server_time"]}, os.environ
            )
        return parse_entry(f"ev{i}", {"command": str(EVERYTHING)}, os.environ)

    raw_alone = max([await time_to_ready([raw(0)]) for _ in range(3)])
    raw_twenty = await time_to_ready([raw(i) for i in range(20)])
    real_alone = max(await time_to_ready([real(0)]), await time_to_ready([real(1)]))
    real_twenty = await time_to_ready([real(i) for i in range(20)])
    return {
        "raw_alone": raw_alone,
        "raw_twenty": raw_twenty,
        "real_alone": real_alone,
        "real_twenty": real_twenty,
    }


def memory_figure(workdir: Path) -> tuple[float, float]:
    servers = {f"ev{i}": {"command": str(EVERYTHING)} for i in range(10)}
    servers |= {f"time{i}": {"command": sys.executable, "args": ["-m", "mcp_server_time"]} for i in range(10)}
    idle = Agent({}, workdir / "empty")
    idle.wait_ready(0)
    time.sleep(1)
    idle_rss = psutil.Process(idle.process.pid).memory_info().rss
    idle.stop()
    agent = Agent(servers, workdir / "twenty")
    try:
        agent.wait_ready(20)
        time.sleep(1)
        return idle_rss / 2**20, psutil.Process(agent.process.pid).memory_info().rss / 2**20
    finally:
        agent.stop()


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per side (default 2000)")
    parser.add_argument("--quick", action="store_true", help="fewer calls, for a smoke run")
    args = parser.parse_args()
    calls = 400 if args.quick else args.calls
    if not EVERYTHING.exists():
        raise SystemExit(f"{EVERYTHING} is missing: run scripts/test once (it installs the npm test servers)")

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        agent = Agent(
            {
                "ev": {"command": str(EVERYTHING)},
                "many": {"command": sys.executable, "args": [str(RAW_SERVER)], "env": {"TOOL_COUNT": "500"}},
            },
            workdir / "main",
        )
        try:
            agent.wait_ready(2)
            calls_fig = asyncio.run(call_tool_figures(agent, calls))
            # 500 tools: the raw server's alone (server-everything's 13 would make 513).
            (workdir / "main" / ".mcp.json").write_text(
                json.dumps(
                    {
                        "mcpServers": {
                            "many": {
                                "command": sys.executable,
                                "args": [str(RAW_SERVER)],
                                "env": {"TOOL_COUNT": "500"},
                            }
                        }
                    }
                )
            )
            with httpx2.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                http.get(f"http://127.0.0.1:{agent.port}/api/v0/mcp/tools", params={"refresh": "true"})
            list_fig = asyncio.run(tool_list_figures(agent, calls))
        finally:
            agent.stop()
        ready_fig = asyncio.run(readiness_figures(delay=1.0))
        idle_mb, twenty_mb = memory_figure(workdir)

    c, lst, r = calls_fig, list_fig, ready_fig
    p50_ratio = c["agent_p50"] / c["direct_p50"]
    tp_ratio = c["agent_tp"] / c["direct_tp"]
    print(f"\nworkdock agent benchmark ({calls} sequential calls per side; {os.cpu_count()} cores)\n")
    print("call-tool on server-everything `echo` (stdio)")
    print(
        f"  direct mcp client   p50 {ms(c['direct_p50'])}   p99 {ms(c['direct_p99'])}   {c['direct_tp']:.0f} calls/s (16 in flight, median of 5 rounds)"
    )
    print(
        f"  through the agent   p50 {ms(c['agent_p50'])}   p99 {ms(c['agent_p99'])}   {c['agent_tp']:.0f} calls/s (16 in flight)"
    )
    print(f"  (agent via httpx2   p50 {ms(c['httpx_p50'])}: the client library's own cost included)")
    print(f"  p50 ratio {p50_ratio:.2f}x (target <= 2.5x: {verdict(p50_ratio <= 2.5)})")
    print(f"  throughput ratio {tp_ratio:.0%} of direct (target >= 40%: {verdict(tp_ratio >= 0.4)})")
    print(f"\nGET /api/v0/mcp/tools with {lst['tools']} tools ({lst['bytes'] / 1024:.0f} KiB)")
    print(f"  200 p50 {ms(lst['full_p50'])} (target <= 1 ms: {verdict(lst['full_p50'] <= 0.001)})")
    print(
        f"  304 p50 {ms(lst['not_modified_p50'])} (target <= 0.5 ms: {verdict(lst['not_modified_p50'] <= 0.0005)})"
    )
    raw_ratio = r["raw_twenty"] / r["raw_alone"]
    print("\n20 stdio servers until all are ready")
    print(
        f"  servers that take 1 s to start: slowest alone {r['raw_alone']:.2f} s, 20 together "
        f"{r['raw_twenty']:.2f} s = {raw_ratio:.2f}x (target <= 1.3x: {verdict(raw_ratio <= 1.3)})"
    )
    print(
        f"  10 server-everything + 10 mcp-server-time: slowest alone {r['real_alone']:.2f} s, 20 together "
        f"{r['real_twenty']:.2f} s = {r['real_twenty'] / r['real_alone']:.2f}x (CPU-bound start-ups on "
        f"{os.cpu_count()} cores)"
    )
    print(
        f"\nagent memory (RSS, children excluded): {idle_mb:.0f} MiB with no server, "
        f"{twenty_mb:.0f} MiB with 20 servers connected"
    )


if __name__ == "__main__":
    main()
