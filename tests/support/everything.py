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
from collections.abc import Callable, Sequence
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
    _start_on_loopback(spawn, [everything_bin, mode], port, log_path, f"server-everything {mode}", 20)
    return port


CONFORMANCE_SERVER = TESTS / "fixtures" / "servers" / "conformance_everything_server.ts"


def start_conformance_server(spawn: Callable[..., subprocess.Popen[bytes]], node: str, log_path: Path) -> str:
    """Start the conformance suite's own reference server (its ``everything-server.ts``, vendored;
    Node >= 22 runs it with type stripping) on 127.0.0.1; return its streamable HTTP URL."""
    port = free_port()
    command = [node, "--experimental-strip-types", "--no-warnings", str(CONFORMANCE_SERVER)]
    _start_on_loopback(spawn, command, port, log_path, "the conformance server", 30, cwd=TESTS)
    return f"http://127.0.0.1:{port}/mcp"


def _start_on_loopback(
    spawn: Callable[..., subprocess.Popen[bytes]],
    command: Sequence[str | os.PathLike[str]],
    port: int,
    log_path: Path,
    what: str,
    timeout: float,
    cwd: Path | None = None,
) -> None:
    """Start a Node server that takes its port from PORT, held to 127.0.0.1 by the preload; wait
    until it accepts there, and fail if it exits first or listens anywhere else."""
    env = {**os.environ, "PORT": str(port), "NODE_OPTIONS": loopback_node_options()}
    with open(log_path, "wb") as log:
        proc = spawn(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)

    def ready() -> bool:
        if proc.poll() is not None:
            output = log_path.read_text(errors="replace")
            raise AssertionError(f"{what} exited with {proc.returncode}: {output}")
        return processes.port_accepts("127.0.0.1", port)

    wait_until_sync(ready, timeout=timeout, message=f"{what} to accept on 127.0.0.1:{port}")
    addresses = processes.listening_addresses(proc.pid)
    assert addresses == {("127.0.0.1", port)}, f"{what} must listen on loopback only: {addresses}"
