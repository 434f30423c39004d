"""Run the real `workdock agent --server URL` as a child process: an agent that dials the chat
server over the agent link (and, with ``listen=True``, serves its HTTP API as well).

Like `support.agent.RunningAgent` it is the leader of its own process group; `stop()` sends it
SIGTERM alone and checks that nothing it started outlived it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from . import processes
from .helpers import free_port, wait_until_sync

SHUTDOWN_LIMIT_SECONDS = 10.0


class LinkedAgent:
    def __init__(
        self,
        workspace: Path,
        log_path: Path,
        server_url: str,
        token: str,
        *args: str,
        listen: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workspace = workspace
        self.token = token
        self.log_path = log_path
        self.port = free_port() if listen else None
        self.url = f"http://127.0.0.1:{self.port}" if listen else None
        self._log = log_path.open("wb")
        command = [
            sys.executable,
            "-m",
            "workdock.cli",
            "agent",
            "--server",
            server_url,
            "--dir",
            str(workspace),
        ]
        if listen:
            command += ["--listen", f"127.0.0.1:{self.port}"]
        self.process = subprocess.Popen(
            [*command, *args],
            env={**os.environ, "WORKDOCK_AGENT_TOKEN": token, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.process.poll() is None

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the agent did not exit within {timeout} s:\n{self.log()}") from None

    def wait_linked(self, count: int = 1, timeout: float = 30) -> None:
        """Until the log shows the agent linked ``count`` times (redials included)."""
        wait_until_sync(
            lambda: self._linked_count() >= count or self._exited(),
            timeout=timeout,
            message=f"the agent to link ({count} times)",
        )
        assert self.running(), f"the agent exited with {self.process.returncode}:\n{self.log()}"

    def _linked_count(self) -> int:
        return self.log().count("INFO    linked to ")

    def _exited(self) -> bool:
        return self.process.poll() is not None

    def listening(self) -> set[tuple[str, int]]:
        return processes.listening_addresses(self.process.pid)

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def running_with(self, marker: str) -> list[psutil.Process]:
        """The agent's descendants whose command line contains ``marker`` (a test's command)."""
        found = []
        for proc in self.descendants():
            try:
                if any(marker in part for part in proc.cmdline()):
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    def kill9(self) -> None:
        """SIGKILL the agent's whole group (agent and servers): no shutdown code runs."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        processes.wait_group_gone(self.process.pid, 5)

    def stop(self) -> None:
        """SIGTERM the agent; fails if it ignored it or anything it started survived."""
        if self.process.poll() is not None:
            processes.stop_group(self.process.pid)
            self._log.close()
            return
        started = self.descendants()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=SHUTDOWN_LIMIT_SECONDS + 5)
        except subprocess.TimeoutExpired:
            pass
        survivors = [p for p in started if _alive(p)]
        processes.stop_group(self.process.pid)
        for proc in survivors:
            try:
                proc.kill()
            except psutil.Error:
                pass
        self._log.close()
        assert self.process.returncode is not None, "the agent ignored SIGTERM"
        assert not survivors, f"processes outlived the agent: {[p.pid for p in survivors]}"


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
