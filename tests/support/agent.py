"""Run the real `workdock agent` as a child process for a test, and talk to it over HTTP.

The agent runs exactly as a user runs it (its own CLI, real signals), so
shutdown, process groups and logging are tested for real. It is the leader of
its own process group; `stop()` sends it SIGTERM alone, so that the agent itself
must end every server it started, and then checks that none outlived it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import psutil

from . import processes
from .helpers import NODE_BIN, free_port, require, wait_until_sync

TOKEN = "test-token-0123456789"
SHUTDOWN_LIMIT_SECONDS = 10.0


def write_config(path: Path, servers: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"mcpServers": servers}, indent=2))
    return path


def fixture_server(script: str, **env: str) -> dict[str, Any]:
    """A `.mcp.json` entry that runs one of tests/fixtures/servers/ over stdio."""
    entry: dict[str, Any] = {
        "command": sys.executable,
        "args": [str(Path(__file__).parent.parent / "fixtures" / "servers" / script)],
    }
    if env:
        entry["env"] = env
    return entry


def node_server(name: str, *args: str, **env: str) -> dict[str, Any]:
    """A `.mcp.json` entry for one of the official npm servers in tests/node_modules
    (`memory`, `filesystem`, `everything`); skips (fails under CI=true) if it is not installed."""
    path = NODE_BIN / f"mcp-server-{name}"
    require(path.exists(), f"{path} is missing: run `npm ci` in tests/ (scripts/test does)")
    entry: dict[str, Any] = {"command": str(path), "args": list(args)}
    if env:
        entry["env"] = env
    return entry


class RunningAgent:
    def __init__(
        self, workspace: Path, log_path: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.workspace = workspace
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        command = [
            sys.executable,
            "-m",
            "workdock.cli",
            "agent",
            "--dir",
            str(workspace),
            "--listen",
            f"127.0.0.1:{self.port}",
            *args,
        ]
        self.process = subprocess.Popen(
            command,
            env={**os.environ, "WORKDOCK_AGENT_TOKEN": TOKEN, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.http = httpx2.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        try:
            self.wait_for(lambda: self._healthy(), 60, "the agent's /healthz to answer")
        except BaseException:
            with contextlib.suppress(AssertionError):
                self.stop()  # never left running when it did not come up
            raise

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the agent exited with {self.process.returncode}:\n{self.log()}")
        try:
            return self.http.get("/healthz", timeout=1).status_code == 200
        except httpx2.TransportError:
            return False

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    @staticmethod
    def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
        return wait_until_sync(condition, timeout=timeout, interval=interval, message=what)

    # ---- API helpers --------------------------------------------------------------------------

    def tools(self, **params: Any) -> dict[str, Any]:
        response = self.http.get("/api/v0/mcp/tools", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def tool_names(self) -> list[str]:
        return [t["name"] for t in self.tools()["tools"]]

    def servers(self) -> dict[str, dict[str, Any]]:
        response = self.http.get("/api/v0/mcp/servers")
        assert response.status_code == 200, response.text
        return {s["name"]: s for s in response.json()["servers"]}

    def server(self, name: str) -> dict[str, Any]:
        return self.servers()[name]

    def wait_state(self, name: str, state: str, timeout: float = 20) -> dict[str, Any]:
        return self.wait_for(
            lambda: (s := self.servers().get(name)) and s["state"] == state and s,
            timeout,
            f"server {name!r} to be {state}",
        )

    def call(self, tool: str, arguments: dict[str, Any] | None = None, **extra: Any) -> httpx2.Response:
        return self.http.post(
            "/api/v0/mcp/call-tool", json={"tool_name": tool, "arguments": arguments or {}, **extra}
        )

    # ---- shutdown -----------------------------------------------------------------------------

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> float:
        """SIGTERM the agent; return how long it took to exit. Fails if anything it started survived."""
        self.http.close()
        if self.process.poll() is not None:
            self._log.close()
            return 0.0
        started = self.descendants()
        begin = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=SHUTDOWN_LIMIT_SECONDS + 5)
        except subprocess.TimeoutExpired:
            pass
        took = time.monotonic() - begin
        survivors = [p for p in started if _alive(p)]
        processes.stop_group(self.process.pid)  # whatever happened, leave nothing behind
        for proc in survivors:
            try:
                proc.kill()
            except psutil.Error:
                pass
        self._log.close()
        assert self.process.returncode is not None, "the agent ignored SIGTERM"
        assert not survivors, f"processes outlived the agent: {[p.pid for p in survivors]}"
        return took


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
