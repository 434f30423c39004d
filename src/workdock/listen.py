"""Listening addresses: ``--listen`` parsed, and the socket bound by us before uvicorn starts.

Binding it ourselves turns a taken address into one clear line (which address, which process holds
it, how to pick another) instead of the traceback uvicorn's own bind ends in.
"""

from __future__ import annotations

import errno
import socket

import psutil


class ListenError(Exception):
    """The address cannot be listened on; the message is one line for the terminal."""


def parse_listen(value: str, default_port: int) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT``, ``[::1]:PORT`` or ``HOST`` → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or (host and "]" not in host and ":" in host):
        # no port at all, or a bare IPv6 address
        return (value.strip("[]") if sep else value) or "127.0.0.1", default_port
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"{value!r}: the port must be a number (HOST:PORT)") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"{value!r}: the port must be between 0 and 65535")
    return host.strip("[]") or "127.0.0.1", number


def url_host(host: str) -> str:
    """The host as it goes in a URL: a wildcard becomes loopback, IPv6 gets brackets."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def bind(host: str, port: int, *, what: str, option: str = "--listen") -> socket.socket:
    """A socket bound to host:port and listening, or a :class:`ListenError` that says why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(f"{what}: cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ListenError(
                f"{what}: {host}:{port} is already in use{holder(port)}; "
                f"pick another address with {option} HOST:PORT"
            ) from None
        raise ListenError(
            f"{what}: cannot listen on {host}:{port}: {exc.strerror or exc}; "
            f"pick another address with {option} HOST:PORT"
        ) from None
    sock.set_inheritable(False)
    return sock


def holder(port: int) -> str:
    """`` by NAME (pid N)`` for the process listening on ``port``, when this user may know it."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                process = psutil.Process(conn.pid)
                command = " ".join(process.cmdline()[:4]) or process.name()
                return f" by {command} (pid {conn.pid})"
    except (psutil.Error, OSError):
        pass
    return ""
