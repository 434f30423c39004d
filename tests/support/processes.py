"""Start test processes in their own process group and make sure the whole group ends.

Why groups: MCP servers are often wrappers (npx, uvx, shell scripts) whose
children outlive them. Killing only the pid we started leaks those, so every
process a test starts gets its own session/group and is stopped with killpg.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

STOP_GRACE_SECONDS = 3.0


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes whose process group is `pgid`.

    psutil rather than `killpg(pgid, 0)`: in a container whose PID 1 does not
    reap orphans, a dead grandchild stays a zombie in the group forever and
    signal 0 would report the group as alive.
    """
    members: list[psutil.Process] = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return members


def wait_group_gone(pgid: int, timeout: float) -> bool:
    """Poll until no live member of `pgid` is left; True if that happened in time."""
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(pgid: int, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the whole group, SIGKILL whatever is left after `grace` seconds."""
    _signal_group(pgid, signal.SIGTERM)
    if not wait_group_gone(pgid, grace):
        _signal_group(pgid, signal.SIGKILL)
        wait_group_gone(pgid, 2.0)


def assert_group_gone(pgid: int) -> None:
    """Fail with the survivors' command lines if any member of `pgid` is still alive."""
    survivors = group_members(pgid)
    if survivors:
        described = []
        for proc in survivors:
            try:
                described.append(f"{proc.pid}: {' '.join(proc.cmdline())}")
            except psutil.Error:
                described.append(str(proc.pid))
        raise AssertionError(f"processes of group {pgid} outlived the test: {described}")


def start_process(
    args: Sequence[str | os.PathLike[str]],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | None = subprocess.PIPE,
    stderr: int | None = subprocess.STDOUT,
) -> subprocess.Popen[bytes]:
    """Start `args` as the leader of a new process group (pgid == pid).

    Pair every call with `stop_process` (the `spawn` fixture in conftest does).
    `env` replaces the environment; pass `{**os.environ, ...}` to extend it.
    """
    return subprocess.Popen(
        [os.fspath(a) for a in args],
        env=env,
        cwd=cwd,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )


def stop_process(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop the process's whole group, reap the leader, and assert nothing of it is left."""
    pgid = proc.pid  # start_new_session made the leader's pid the pgid
    stop_group(pgid, grace)
    try:
        proc.wait(timeout=2.0)
    except subprocess.TimeoutExpired:
        pass
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    assert_group_gone(pgid)


def port_accepts(host: str, port: int) -> bool:
    """True if a TCP connection to host:port succeeds right now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """(ip, port) pairs that `pid` listens on over TCP (IPv4 and IPv6)."""
    proc = psutil.Process(pid)
    return {
        (conn.laddr.ip, conn.laddr.port)
        for conn in proc.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN
    }
