"""``workdock server``: run the chat server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import signal
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from workdock.chat.app import create_app, database_url_of, sqlite_lock_for
from workdock.chat.auth import login_url
from workdock.chat.models import server_only_env
from workdock.chat.services import (
    PUBLIC_URL_ENV,
    TRUSTED_PROXIES_ENV,
    ServerConfig,
    Services,
    default_data_dir,
)
from workdock.chat.sqlite_lock import DatabaseInUse
from workdock.log_redact import install_redaction, uvicorn_log_config
from workdock.mcp.limits import MAX_RESULT_ENV, parse_limit

DEFAULT_LISTEN = "127.0.0.1:3000"


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--listen expects HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


def trusted_proxies(given: Sequence[str] | None) -> tuple[str, ...]:
    """``--trusted-proxy`` values, else ``WORKDOCK_TRUSTED_PROXIES`` (comma- or space-separated)."""
    if given:
        return tuple(given)
    return tuple(p for p in re.split(r"[,\s]+", os.environ.get(TRUSTED_PROXIES_ENV, "")) if p)


def server_config(
    listen: str,
    database_url: str | None,
    data_dir: Path | None,
    public_url: str | None = None,
    proxies: Sequence[str] | None = None,
    max_result_bytes: int | None = None,
    replica_address: str | None = None,
) -> ServerConfig:
    host, port = parse_listen(listen)
    if replica_address is not None:
        parse_listen(replica_address)  # HOST:PORT, as --listen
    elif host in ("0.0.0.0", "::", ""):  # reachable on every interface: by this host's name
        replica_address = f"{socket.getfqdn()}:{port}"
    else:
        replica_address = listen
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    # Given explicitly, it is also what agents are told to dial; else they are told the URL a
    # request came in on.
    explicit = public_url or os.environ.get(PUBLIC_URL_ENV)
    public_url = explicit or f"http://{shown}:{port}"
    if not public_url.startswith(("http://", "https://")):
        raise ValueError(f"the public URL must start with http:// or https://, got {public_url!r}")
    return ServerConfig(
        data_dir=data_dir or default_data_dir(),
        database_url=database_url,
        public_url=public_url.rstrip("/"),
        agent_server_url=explicit.rstrip("/") if explicit else None,
        trusted_proxies=trusted_proxies(proxies),
        max_result_bytes=max_result_bytes or parse_limit(os.environ.get(MAX_RESULT_ENV)),
        replica_address=replica_address,
    )


def refuse_if_in_use(config: ServerConfig) -> None:
    """Stop before serving when another process serves this SQLite database (the app checks it
    too; here it is a clean message instead of a failed start)."""
    lock = sqlite_lock_for(database_url_of(config))
    if lock is None or not lock.path.parent.is_dir():
        return
    try:
        lock.acquire()
    except DatabaseInUse as exc:
        raise SystemExit(f"workdock: {exc}") from None
    lock.release()


def uvicorn_config(
    app: FastAPI, config: ServerConfig, host: str, port: int, **options: Any
) -> uvicorn.Config:
    """How the chat server is served, for ``server``, ``up`` and the tests alike."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        timeout_graceful_shutdown=10,
        # X-Forwarded-Proto/-For are believed from the configured proxies only (none by default;
        # uvicorn's own default would trust 127.0.0.1).
        proxy_headers=bool(config.trusted_proxies),
        forwarded_allow_ips=list(config.trusted_proxies) or None,
        log_config=uvicorn_log_config(),
        **options,
    )


def run_server(
    listen: str = DEFAULT_LISTEN,
    database_url: str | None = None,
    data_dir: Path | None = None,
    public_url: str | None = None,
    proxies: Sequence[str] | None = None,
    *,
    max_result_bytes: int | None = None,
    verbose: bool = False,
    replica_address: str | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM. Migrations run on start; the first start prints a login URL."""
    setup_server_logging(logging.DEBUG if verbose else logging.INFO)
    config = server_config(
        listen, database_url, data_dir, public_url, proxies, max_result_bytes, replica_address
    )
    refuse_if_in_use(config)
    host, port = parse_listen(listen)
    uvicorn.Server(uvicorn_config(create_app(config), config, host, port, log_level="info")).run()


def setup_server_logging(level: int) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level <= logging.DEBUG:
        # Our debug detail, not every byte the HTTP and MCP stacks move.
        for noisy in ("httpx2", "httpcore", "httpcore2", "mcp", "aiosqlite", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.INFO)
    install_redaction()


@contextlib.contextmanager
def _no_signal_capture() -> Iterator[None]:
    """For the two uvicorn servers of ``run_up``: it handles the signals itself (they share a process)."""
    yield


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def workspace_name(directory: Path, taken: set[str]) -> str:
    """A short name for the workspace at ``directory``: its own name, with its parent's name in
    front when another workspace already has that one (``app``, then ``client/app``)."""
    for name in (directory.name, f"{directory.parent.name}/{directory.name}"):
        if name and name not in taken:
            return name
    return str(directory)


async def register_workspace(svc: Services, directory: Path, agent_url: str, agent_token: str) -> str:
    """The admin's workspace for ``directory`` (made once, its agent URL and token refreshed every
    start); returns a one-time login URL that opens it."""
    admins = [u for u in await svc.store.list_users() if u.is_admin]
    if not admins:
        raise RuntimeError("no admin user")
    admin = admins[0]
    path = str(directory)
    mine = list(await svc.store.list_workspaces(admin.id))
    # Found by its path; one registered before workspaces had a path is named by it instead.
    existing = next((w for w in mine if w.path == path), None) or next(
        (w for w in mine if w.path is None and w.name == path), None
    )
    if existing is None:
        name = workspace_name(directory, {w.name for w in mine})
        await svc.store.create_workspace(admin.id, name, agent_url, agent_token, path=path)
    else:
        fields: dict[str, str] = {"agent_url": agent_url, "agent_token": agent_token, "path": path}
        if existing.path is None:  # named by its path: give it the short name
            fields["name"] = workspace_name(directory, {w.name for w in mine if w is not existing})
        await svc.store.update_workspace(existing.id, **fields)
        svc.pool.forget(existing.id)
    return await login_url(svc, admin)


async def _up(directory: Path, listen: str, config: ServerConfig) -> None:
    from workdock.agent.runtime import AgentSettings
    from workdock.agent.serve import uvicorn_server

    host, port = parse_listen(listen)
    config.quiet = True  # `up` prints its own login URL below
    app = create_app(config)
    chat = uvicorn.Server(uvicorn_config(app, config, host, port, log_level="warning"))
    agent_token = secrets.token_urlsafe(32)
    agent_port = _free_port("127.0.0.1")
    # The agent shares this process, so its environment: the workspace's commands and MCP servers
    # must not get the server's own settings and secrets (provider keys, WORKDOCK_* tokens).
    agent_settings = AgentSettings(
        workspace=directory,
        token=agent_token,
        port=agent_port,
        max_result_bytes=config.max_result_bytes,
        withheld_env=server_only_env,
    )
    agent = uvicorn_server(agent_settings)
    chat.capture_signals = agent.capture_signals = _no_signal_capture  # type: ignore[method-assign]

    def stop_both() -> None:
        chat.should_exit = agent.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_both)
    tasks = [asyncio.create_task(agent.serve(), name="agent"), asyncio.create_task(chat.serve(), name="chat")]
    while not (chat.started and agent.started):
        if any(t.done() for t in tasks):
            chat.should_exit = agent.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
            raise SystemExit("workdock up: a server failed to start (is the port in use?)")
        await asyncio.sleep(0.05)
    url = await register_workspace(
        app.state.services, directory, f"http://127.0.0.1:{agent_port}", agent_token
    )
    models = app.state.services.models
    print(
        f"workdock is up for {directory}\n  open: {url}\n  server: {config.public_url}  "
        f"agent: http://127.0.0.1:{agent_port}",
        flush=True,
    )
    if not models.names:
        print(
            "  no model configured yet: set WORKDOCK_MODELS (e.g. openai:gpt-4.1 with OPENAI_API_KEY) "
            "and restart",
            flush=True,
        )
    # Either one stopping (a signal, or a crash) ends both.
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    chat.should_exit = agent.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)


def run_up(
    dir: Path | None = None,
    listen: str = DEFAULT_LISTEN,
    database_url: str | None = None,
    data_dir: Path | None = None,
    public_url: str | None = None,
    proxies: Sequence[str] | None = None,
    *,
    max_result_bytes: int | None = None,
    verbose: bool = False,
) -> None:
    """``workdock up``: the chat server and an agent for ``dir`` in one process, the workspace
    registered, and a login URL printed."""
    setup_server_logging(logging.DEBUG if verbose else logging.WARNING)
    directory = (dir or Path.cwd()).resolve()
    if not directory.is_dir():
        raise SystemExit(f"workdock up: {directory} is not a directory")
    config = server_config(listen, database_url, data_dir, public_url, proxies, max_result_bytes)
    refuse_if_in_use(config)
    asyncio.run(_up(directory, listen, config))


if __name__ == "__main__":  # `python -m workdock.chat.cli_server [LISTEN] [DATABASE_URL]` (tests)
    import argparse

    parser = argparse.ArgumentParser(prog="workdock server")
    parser.add_argument("--listen", default=DEFAULT_LISTEN)
    parser.add_argument("--database-url")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--public-url")
    parser.add_argument("--trusted-proxy", action="append")
    parser.add_argument("--replica-address")
    parser.add_argument("--up", type=Path, metavar="DIR", help="run `workdock up` for DIR instead")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    if args.up is not None:
        run_up(
            args.up,
            args.listen,
            args.database_url,
            args.data_dir,
            args.public_url,
            args.trusted_proxy,
            verbose=args.verbose,
        )
    else:
        run_server(
            args.listen,
            args.database_url,
            args.data_dir,
            args.public_url,
            args.trusted_proxy,
            verbose=args.verbose,
            replica_address=args.replica_address,
        )
