"""``tools/call`` through the agent's ``/mcp`` against a direct call and against mcp-proxy, in one run.

    .venv/bin/python bench/mcp_endpoint_bench.py [--calls 4000] [--quick]

The method of the reference benchmark (``shared/bench/run``): one server-everything stdio server,
tool ``echo`` {"message": "hello"}; every target is a process of its own on 127.0.0.1.

- direct: an ``mcp`` 2.3 ``Client`` (``mode="legacy"``, ``call_tool``) on the server, in its own
  process (``agent_bench.direct_figures``).
- workdock: a real ``workdock agent`` with the server in its ``.mcp.json``; ``tools/call`` of
  ``ev__echo`` on ``/mcp``.
- mcp-proxy: the Python ``mcp-proxy`` 0.13.0 from PyPI (``mcp-proxy --host 127.0.0.1 --port P --
  CMD``, streamable HTTP at ``/mcp``), installed once into its own venv under
  ``$BENCH_CACHE`` (default ``~/.cache/workdock-anchors``, the reference benchmark's cache).

The two proxies are driven by one httpx2 load generator with keep-alive speaking raw MCP over
streamable HTTP: ``initialize`` and ``notifications/initialized`` once, then ``tools/call`` POSTs
on that session (answers as JSON or SSE). Each target: 200 warm-up calls, 1,000 sequential calls
(p50, p99), then ``--calls`` calls with 16 in flight (calls/s); each proxy's CPU per call is its
process's CPU time (user + system, children excluded) over the measured calls. Targets: workdock's p50 ≤ 2.5×
direct's, its calls/s ≥ 2× mcp-proxy's. The same client then drives a null server
(``bench/servers/null_http.py``, answering at once as the agent did): the load generator's own
ceiling in this run. Only ratios within one run mean anything.
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
from pathlib import Path
from typing import Any

import httpx2
from agent_bench import (
    EVERYTHING,
    IN_FLIGHT,
    SEQUENTIAL,
    TOKEN,
    WARMUP,
    Agent,
    NullServer,
    direct_figures,
    direct_worker,
    free_port,
    ms,
    percentile,
    process_cpu,
    throughput,
    timed,
)

ECHO = {"message": "hello"}
MCP_PROXY_SPEC = "mcp-proxy==0.13.0"
CACHE = Path(
    os.environ.get("BENCH_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "workdock-anchors"
)


def mcp_proxy_exe() -> Path:
    """mcp-proxy in its own venv (it needs mcp < 2), installed once."""
    venv = CACHE / "venv-mcpproxy"
    exe = venv / "bin" / "mcp-proxy"
    marker = venv / ".bench-spec"
    if exe.exists() and marker.exists() and marker.read_text() == MCP_PROXY_SPEC:
        return exe
    print(f"installing {MCP_PROXY_SPEC} into {venv} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", MCP_PROXY_SPEC],
        check=True,
    )
    marker.write_text(MCP_PROXY_SPEC)
    return exe


class Session:
    """Raw MCP over streamable HTTP: one session, many ``tools/call`` POSTs."""

    def __init__(self, http: httpx2.AsyncClient, url: str, tool: str) -> None:
        self.http, self.url, self.tool = http, url, tool
        self.headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        self.next_id = 0
        self.last: httpx2.Response | None = None  # one answer, for the null server to replay

    async def open(self) -> None:
        params = {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "workdock-bench", "version": "1"},
        }
        response = await self.http.post(
            self.url,
            json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params},
            headers=self.headers,
        )
        answer = _answer(response, 0)
        assert "result" in answer, answer
        self.headers["Mcp-Session-Id"] = response.headers["mcp-session-id"]
        self.headers["MCP-Protocol-Version"] = answer["result"]["protocolVersion"]
        note = await self.http.post(
            self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=self.headers
        )
        assert note.status_code < 300, note.text

    async def call(self) -> None:
        self.next_id += 1
        request_id = self.next_id
        body = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": self.tool, "arguments": ECHO},
        }
        response = self.last = await self.http.post(self.url, json=body, headers=self.headers)
        result = _answer(response, request_id)["result"]
        assert not result.get("isError") and result["content"][0]["text"] == "Echo: hello", result


def _answer(response: httpx2.Response, request_id: int) -> dict[str, Any]:
    """The JSON-RPC answer with this id, from a JSON body or an SSE stream."""
    assert response.status_code == 200, (response.status_code, response.text[:200])
    if response.headers.get("content-type", "").startswith("application/json"):
        messages = [response.json()]
    else:
        messages = [
            json.loads(line[5:].strip()) for line in response.text.splitlines() if line.startswith("data:")
        ]
    return next(m for m in messages if isinstance(m, dict) and m.get("id") == request_id)


async def proxy_figures(
    url: str, tool: str, calls: int, headers: dict[str, str], pid: int
) -> tuple[dict[str, float], httpx2.Response]:
    """The figures, and one tools/call answer (what the null server replays)."""
    limits = httpx2.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx2.AsyncClient(headers=headers, limits=limits, trust_env=False, timeout=60) as http:
        session = Session(http, url, tool)
        deadline = time.monotonic() + 120
        while True:  # ready: the first call that answers
            try:
                await session.open()
                await session.call()
                break
            except (httpx2.TransportError, AssertionError, KeyError, StopIteration):
                if time.monotonic() > deadline:
                    raise
                session = Session(http, url, tool)
                await asyncio.sleep(0.2)
        await timed(WARMUP, session.call)
        cpu_before = process_cpu(pid)
        latencies = await timed(SEQUENTIAL, session.call)
        calls_per_s = await throughput(IN_FLIGHT, calls, lambda _i: session.call)
        cpu = process_cpu(pid) - cpu_before
    figures = {
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 0.99),
        "tp": calls_per_s,
        "cpu_per_call": cpu / (SEQUENTIAL + calls),
    }
    assert session.last is not None
    return figures, session.last


async def workdock_figures(calls: int) -> tuple[dict[str, float], dict[str, float]]:
    """The agent's figures, then the ceiling's: the same client against the null server
    answering as the agent did."""
    # The bench's own temporary config: its server starts without the trust gate's approval.
    os.environ["WORKDOCK_TRUST"] = "1"
    with tempfile.TemporaryDirectory(prefix="workdock-mcp-bench-") as work:
        agent = Agent({"ev": {"command": str(EVERYTHING)}}, Path(work) / "agent")
        try:
            agent.wait_ready(1)
            url = f"http://127.0.0.1:{agent.port}/mcp"
            auth = {"Authorization": f"Bearer {TOKEN}"}
            ours, answer = await proxy_figures(url, "ev__echo", calls, auth, agent.process.pid)
        finally:
            agent.stop()
        null = NullServer(answer, Path(work))
        try:
            url = f"http://127.0.0.1:{null.port}/mcp"
            ceiling, _ = await proxy_figures(url, "ev__echo", calls, {}, null.process.pid)
        finally:
            null.stop()
    return ours, ceiling


async def mcp_proxy_figures(calls: int) -> dict[str, float]:
    port = free_port()
    process = subprocess.Popen(
        [str(mcp_proxy_exe()), "--host", "127.0.0.1", "--port", str(port), "--", str(EVERYTHING)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        return (await proxy_figures(f"http://127.0.0.1:{port}/mcp", "echo", calls, {}, process.pid))[0]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=4000, help="calls with 16 in flight, per target")
    parser.add_argument("--quick", action="store_true", help="400 calls (a smoke run)")
    parser.add_argument("--direct-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    calls = 400 if args.quick else args.calls
    if args.direct_worker:
        asyncio.run(direct_worker(calls))
        return
    if not EVERYTHING.exists():
        raise SystemExit(f"{EVERYTHING} is missing: run `npm ci` in tests/ (scripts/test does)")
    direct = direct_figures(calls)
    ours, ceiling = asyncio.run(workdock_figures(calls))
    theirs = asyncio.run(mcp_proxy_figures(calls))
    figures = {"direct": direct, "workdock /mcp": ours, "mcp-proxy 0.13.0": theirs, "null server": ceiling}
    print(f"tools/call, server-everything echo; {SEQUENTIAL} sequential, {calls} with {IN_FLIGHT} in flight")
    print(f"{'target':<18} {'p50':>12} {'p99':>12} {'calls/s':>10}  p50 vs direct  proxy CPU/call")
    for name, f in figures.items():
        cpu = f"{ms(f['cpu_per_call']):>14}" if "cpu_per_call" in f else ""
        print(
            f"{name:<18} {ms(f['p50']):>12} {ms(f['p99']):>12} {f['tp']:>10.0f}  "
            f"{f['p50'] / direct['p50']:>12.2f}×  {cpu}"
        )
    p50_ratio = ours["p50"] / direct["p50"]
    tp_ratio = ours["tp"] / theirs["tp"]
    print(
        f"workdock p50 / direct p50: {p50_ratio:.2f}× (target ≤ 2.5×) {'ok' if p50_ratio <= 2.5 else 'MISSED'}"
    )
    print(
        f"workdock calls/s / mcp-proxy's: {tp_ratio:.2f}× (target ≥ 2×) {'ok' if tp_ratio >= 2 else 'MISSED'}"
    )
    # The proxy process's own CPU (children excluded): what moves least with the machine's load.
    print(f"workdock CPU per call / mcp-proxy's: {ours['cpu_per_call'] / theirs['cpu_per_call']:.2f}×")
    # What the load generator reaches against a server that answers at once (its own ceiling).
    print(
        f"null server (answers at once, the client's ceiling): p50 {ceiling['p50'] / direct['p50']:.2f}× "
        f"direct, calls/s {ceiling['tp'] / theirs['tp']:.2f}× mcp-proxy's; workdock adds "
        f"{ms(ours['p50'] - ceiling['p50'])} to its p50 and reaches {ours['tp'] / ceiling['tp']:.0%} of its calls/s"
    )
    checks = (("p50", ceiling["p50"] / direct["p50"] > 2.5), ("throughput", ceiling["tp"] / theirs["tp"] < 2))
    if beyond := [name for name, out in checks if out]:
        print(
            f"(the {' and '.join(beyond)} target is beyond this client's own ceiling here: no HTTP server meets it)"
        )


if __name__ == "__main__":
    main()
