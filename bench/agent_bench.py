"""What the agent adds to a direct MCP call, measured side by side in one run.

    .venv/bin/python bench/agent_bench.py [--calls 4000] [--quick]

1. call-tool, measured as the reference benchmark (``shared/bench/run``) does: the same
   server-everything stdio server (`echo` {"message": "hello"}), called by a direct in-process
   `mcp` Client (``mode="legacy"``, ``call_tool``) in a process of its own, and through the agent's
   ``POST /api/v0/mcp/call-tool`` by one httpx2 load generator with keep-alive (the client the
   chat server uses). Each side: 200 warm-up calls, 1,000 sequential calls (p50, p99), then
   ``--calls`` calls with 16 in flight (calls/s); the agent's CPU per call is its process CPU
   time (user + system, from /proc) over the measured calls, children excluded. The same client
   then drives a null server (``bench/servers/null_http.py``) that answers at once with the
   agent's own bytes: the load generator's ceiling in this run, which no proxy can pass.
2. `GET /api/v0/mcp/tools` with 500 tools, and its 304.
3. 20 stdio servers: time until all are ready, against the slowest alone.
4. The agent's own memory with 20 servers connected (children excluded).

The agent runs as a real `workdock agent` process. Ratios from one run are what to compare:
absolute times move with the machine's load; CPU per call moves least.
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
NULL_SERVER = ROOT / "bench" / "servers" / "null_http.py"
TOKEN = "bench-token"


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
                "--trust",  # the bench wrote this .mcp.json itself: no approval to wait for
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


WARMUP, SEQUENTIAL, IN_FLIGHT = 200, 1000, 16
ECHO = {"message": "hello"}


async def phases(call: Callable[[], Awaitable[None]], calls: int) -> tuple[list[float], float]:
    """Warm-up, sequential latencies, then calls/s with IN_FLIGHT in flight (the reference's phases)."""
    await timed(WARMUP, call)
    latencies = await timed(SEQUENTIAL, call)
    return latencies, await throughput(IN_FLIGHT, calls, lambda _i: call)


async def direct_worker(calls: int) -> None:
    """The direct side, in a process of its own: one JSON line with its figures."""
    params = StdioServerParameters(command=str(EVERYTHING), env=dict(os.environ))
    async with Client(params, mode="legacy") as client:

        async def call() -> None:
            result = await client.call_tool("echo", ECHO)
            assert not result.is_error

        latencies, calls_per_s = await phases(call, calls)
    print(
        json.dumps(
            {"p50": statistics.median(latencies), "p99": percentile(latencies, 0.99), "tp": calls_per_s}
        )
    )


def direct_figures(calls: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--direct-worker", "--calls", str(calls)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def process_cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


class NullServer:
    """``bench/servers/null_http.py`` answering every call with what the agent answered to one:
    what the load generator reaches against a server that costs nothing (its own ceiling)."""

    def __init__(self, answer: httpx2.Response, workdir: Path) -> None:
        recorded = workdir / "null-answer.json"
        recorded.write_text(json.dumps({"headers": list(answer.headers.multi_items()), "body": answer.text}))
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(NULL_SERVER), str(self.port), str(recorded)], start_new_session=True
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise SystemExit("the null server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)


async def call_tool_figures(port: int, pid: int, calls: int) -> tuple[dict[str, float], httpx2.Response]:
    """call-tool of ev__echo on 127.0.0.1:``port`` (the agent, or the null server answering as it):
    the figures, and one answer (what the null server replays)."""
    body = {"tool_name": "ev__echo", "arguments": ECHO}
    limits = httpx2.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx2.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        limits=limits,
        trust_env=False,
    ) as http:

        async def call() -> None:
            response = await http.post("/api/v0/mcp/call-tool", json=body)
            assert response.status_code == 200, response.text
            assert response.json()["content"][0]["text"] == "Echo: hello"

        await timed(WARMUP, call)
        cpu_before = process_cpu(pid)
        latencies = await timed(SEQUENTIAL, call)
        calls_per_s = await throughput(IN_FLIGHT, calls, lambda _i: call)
        cpu = process_cpu(pid) - cpu_before
        answer = await http.post("/api/v0/mcp/call-tool", json=body)
    figures = {
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 0.99),
        "tp": calls_per_s,
        "cpu_per_call": cpu / (SEQUENTIAL + calls),
    }
    return figures, answer


def ceiling_figures(answer: httpx2.Response, workdir: Path, calls: int) -> dict[str, float]:
    null = NullServer(answer, workdir)
    try:
        return asyncio.run(call_tool_figures(null.port, null.process.pid, calls))[0]
    finally:
        null.stop()


async def tool_list_figures(agent: Agent, n: int) -> dict[str, float]:
    async with httpx2.AsyncClient(
        base_url=f"http://127.0.0.1:{agent.port}", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as http:
        first = await http.get("/api/v0/mcp/tools")
        listing = first.json()
        version = listing["version"]

        async def full() -> None:
            assert (await http.get("/api/v0/mcp/tools")).status_code == 200

        async def not_modified() -> None:
            response = await http.get("/api/v0/mcp/tools", headers={"If-None-Match": f'"{version}"'})
            assert response.status_code == 304

        await timed(200, full)
        full_s = await timed(n, full)
        await timed(200, not_modified)
        cached_s = await timed(n, not_modified)
    return {
        "tools": len(listing["tools"]),
        "bytes": len(first.content),
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
    parser.add_argument("--calls", type=int, default=4000, help="calls with 16 in flight per side (4000)")
    parser.add_argument("--quick", action="store_true", help="fewer calls, for a smoke run")
    parser.add_argument("--calls-only", action="store_true", help="section 1 alone")
    parser.add_argument("--direct-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    calls = 400 if args.quick else args.calls
    if args.direct_worker:
        asyncio.run(direct_worker(calls))
        return
    if not EVERYTHING.exists():
        raise SystemExit(f"{EVERYTHING} is missing: run scripts/test once (it installs the npm test servers)")

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        direct = direct_figures(calls)
        agent = Agent(
            {
                "ev": {"command": str(EVERYTHING)},
                "many": {"command": sys.executable, "args": [str(RAW_SERVER)], "env": {"TOOL_COUNT": "500"}},
            },
            workdir / "main",
        )
        try:
            agent.wait_ready(2)
            through, answer = asyncio.run(call_tool_figures(agent.port, agent.process.pid, calls))
            ceiling = ceiling_figures(answer, workdir, calls)
            if args.calls_only:
                print_calls(direct, through, ceiling, calls)
                return
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
            list_fig = asyncio.run(tool_list_figures(agent, 1000 if not args.quick else 200))
        finally:
            agent.stop()
        ready_fig = asyncio.run(readiness_figures(delay=1.0))
        idle_mb, twenty_mb = memory_figure(workdir)

    print_calls(direct, through, ceiling, calls)
    print_rest(list_fig, ready_fig, idle_mb, twenty_mb)


def print_calls(d: dict[str, float], a: dict[str, float], c: dict[str, float], calls: int) -> None:
    """Direct, the agent, and the ceiling ``c`` (the same client against a server that costs nothing)."""
    p50_ratio, ceiling_p50_ratio = a["p50"] / d["p50"], c["p50"] / d["p50"]
    tp_ratio, ceiling_tp_ratio = a["tp"] / d["tp"], c["tp"] / d["tp"]
    cpu_ms = a["cpu_per_call"] * 1000
    print(f"\nworkdock agent benchmark ({os.cpu_count()} cores)\n")
    print(
        f"call-tool on server-everything `echo` (stdio): {SEQUENTIAL} sequential, {calls} with "
        f"{IN_FLIGHT} in flight; httpx2 keep-alive"
    )
    print(
        f"  direct mcp Client   p50 {ms(d['p50'])}   p99 {ms(d['p99'])}   {d['tp']:.0f} calls/s"
        " (own process, legacy mode)"
    )
    print(
        f"  through the agent   p50 {ms(a['p50'])}   p99 {ms(a['p99'])}   {a['tp']:.0f} calls/s"
        f"   agent CPU {cpu_ms:.3f} ms per call"
    )
    print(
        f"  null server         p50 {ms(c['p50'])}   p99 {ms(c['p99'])}   {c['tp']:.0f} calls/s"
        "   (answers at once with the agent's bytes: the load generator's own ceiling)"
    )
    print(
        f"  p50 ratio {p50_ratio:.2f}x (target <= 2.5x: {verdict(p50_ratio <= 2.5)}); "
        f"the ceiling is {ceiling_p50_ratio:.2f}x, the agent adds {ms(a['p50'] - c['p50'])}"
    )
    print(
        f"  throughput {tp_ratio:.0%} of direct (target >= 40%: {verdict(tp_ratio >= 0.4)}); "
        f"the ceiling is {ceiling_tp_ratio:.0%}, the agent reaches {a['tp'] / c['tp']:.0%} of it"
    )
    print(f"  agent CPU per call {cpu_ms:.3f} ms (target <= 0.3 ms: {verdict(cpu_ms <= 0.3)})")
    checks = (("p50", ceiling_p50_ratio > 2.5), ("throughput", ceiling_tp_ratio < 0.4))
    if beyond := [name for name, out in checks if out]:
        print(
            f"  (the {' and '.join(beyond)} target is beyond this client's own ceiling on this machine: "
            "no HTTP server can meet it here)"
        )


def print_rest(lst: dict[str, float], r: dict[str, float], idle_mb: float, twenty_mb: float) -> None:
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
