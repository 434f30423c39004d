"""Start @modelcontextprotocol/server-everything (tests/node_modules) over HTTP or SSE.

Facts from its dist/ source (version 2026.8.31): `mcp-server-everything [stdio|sse|streamableHttp]`
(default stdio); the port comes from env PORT (default 3001); streamable HTTP
is served at /mcp, SSE at /sse (messages POSTed to /message). It calls
`app.listen(PORT)` with no host and has no host option or env var, so Node
binds every interface. The preload `fixtures/node/listen-localhost.cjs`
(loaded through NODE_OPTIONS) pins such listens to 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from . import processes
from .helpers import TESTS, free_port, wait_until_sync

LISTEN_LOCALHOST_PRELOAD = TESTS / "fixtures" / "node" / "listen-localhost.cjs"
MODES = ("sse", "streamableHttp")


def loopback_node_options() -> str:
    """NODE_OPTIONS that keep a Node server on 127.0.0.1 (added to any already set)."""
    return f'{os.environ.get("NODE_OPTIONS", "")} --require "{LISTEN_LOCALHOST_PRELOAD}"'.strip()


def start_everything(
    spawn: Callable[..., subprocess.Popen[bytes]],
    everything_bin: Path,
    mode: str,
    log_path: Path,
    port: int | None = None,
) -> int:
    """Start server-everything in `mode` ("sse" or "streamableHttp") on 127.0.0.1; return its port.

    `spawn` is the conftest fixture (it stops the process group after the
    test); `port` reuses a known port (e.g. to bring a server back). Output goes
    to `log_path`: it logs every request, and a pipe nobody reads would fill.
    Fails if the server exits early or listens anywhere but 127.0.0.1.
    """
    assert mode in MODES, f"mode must be one of {MODES}"
    port = port or free_port()
    env = {**os.environ, "PORT": str(port), "NODE_OPTIONS": loopback_node_options()}
    with open(log_path, "wb") as log:
        proc = spawn([everything_bin, mode], env=env, stdout=log, stderr=subprocess.STDOUT)

    def ready() -> bool:
        if proc.poll() is not None:
            output = log_path.read_text(errors="replace")
            raise AssertionError(f"server-everything {mode} exited with {proc.returncode}: {output}")
        return processes.port_accepts("127.0.0.1", port)

    wait_until_sync(ready, timeout=20, message=f"server-everything {mode} to accept on 127.0.0.1:{port}")
    addresses = processes.listening_addresses(proc.pid)
    assert addresses == {("127.0.0.1", port)}, f"server-everything must listen on loopback only: {addresses}"
    return port


CONFORMANCE_SERVER = TESTS / "fixtures" / "servers" / "conformance_everything_server.ts"


def start_conformance_server(spawn: Callable[..., subprocess.Popen[bytes]], node: str, log_path: Path) -> str:
    """Start the conformance suite's own reference server (its ``everything-server.ts``, vendored;
    Node >= 22 runs it with type stripping) on 127.0.0.1; return its streamable HTTP URL."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "NODE_OPTIONS": loopback_node_options()}
    command = [node, "--experimental-strip-types", "--no-warnings", str(CONFORMANCE_SERVER)]
    with open(log_path, "wb") as log:
        proc = spawn(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=TESTS)

    def ready() -> bool:
        if proc.poll() is not None:
            output = log_path.read_text(errors="replace")
            raise AssertionError(f"the conformance server exited with {proc.returncode}: {output}")
        return processes.port_accepts("127.0.0.1", port)

    wait_until_sync(ready, timeout=30, message=f"the conformance server to accept on 127.0.0.1:{port}")
    addresses = processes.listening_addresses(proc.pid)
    assert addresses == {("127.0.0.1", port)}, (
        f"the conformance server must listen on loopback only: {addresses}"
    )
    return f"http://127.0.0.1:{port}/mcp"
