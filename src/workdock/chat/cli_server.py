"""``workdock server`` and ``workdock up``: run the chat server (and, for ``up``, an agent beside it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from rich.console import Console

from workdock.agent.discovery import UpRecord, remove_record, write_record
from workdock.agent.runtime import AgentRuntime, AgentSettings
from workdock.agent.trust import trust_all_from_env
from workdock.agent.trust_prompt import ask_for_approval
from workdock.chat.app import create_app, database_url_of, sqlite_lock_for
from workdock.chat.auth import login_url
from workdock.chat.catalog import Budget
from workdock.chat.datadir import default_data_dir
from workdock.chat.models import server_only_env
from workdock.chat.services import (
    PUBLIC_URL_ENV,
    TRUSTED_PROXIES_ENV,
    ServerConfig,
    Services,
)
from workdock.chat.sqlite_lock import DatabaseInUse
from workdock.listen import ListenError, bind, parse_listen, url_host
from workdock.logs import setup_logging
from workdock.mcp.config import kept_note
from workdock.mcp.limits import MAX_RESULT_ENV, parse_limit
from workdock.tables import print_servers

DEFAULT_LISTEN = "127.0.0.1:3000"
SETTLE_SECONDS = 35.0  # the agent's connect budget (30 s) and a little: then `up` shows the table

out = Console(highlight=False, soft_wrap=True)


def _bind(listen: str, what: str) -> tuple[socket.socket, str]:
    """The listening socket and the URL it is reached at; a ``SystemExit`` with one line if not."""
    try:
        host, port = parse_listen(listen, 3000)
        sock = bind(host, port, what=what)
    except (ValueError, ListenError) as exc:
        raise SystemExit(f"error: {exc}") from None
    port = sock.getsockname()[1]  # the real one when 0 was asked for
    return sock, f"http://{url_host(host)}:{port}"


def trusted_proxies(given: Sequence[str] | None) -> tuple[str, ...]:
    """``--trusted-proxy`` values, else ``WORKDOCK_TRUSTED_PROXIES`` (comma- or space-separated)."""
    if given:
        return tuple(given)
    return tuple(p for p in re.split(r"[,\s]+", os.environ.get(TRUSTED_PROXIES_ENV, "")) if p)


def server_config(
    url: str,
    database_url: str | None,
    data_dir: Path | None,
    public_url: str | None = None,
    proxies: Sequence[str] | None = None,
    max_result_bytes: int | None = None,
    replica_address: str | None = None,
) -> ServerConfig:
    """The server's settings; ``url`` is where it listens (the public URL's default), and
    ``replica_address`` where the other replicas reach it (``replica_address_for``)."""
    # Given explicitly, it is also what agents are told to dial; else they are told the URL a
    # request came in on.
    explicit = public_url or os.environ.get(PUBLIC_URL_ENV)
    public = explicit or url
    if not public.startswith(("http://", "https://")):
        raise ValueError(f"the public URL must start with http:// or https://, got {public!r}")
    try:
        tool_budget = Budget.from_env()
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    return ServerConfig(
        data_dir=data_dir or default_data_dir(),
        database_url=database_url,
        public_url=public.rstrip("/"),
        agent_server_url=explicit.rstrip("/") if explicit else None,
        trusted_proxies=trusted_proxies(proxies),
        max_result_bytes=max_result_bytes or parse_limit(os.environ.get(MAX_RESULT_ENV)),
        tool_budget=tool_budget,
        replica_address=replica_address,
    )


def replica_address_for(listen: str, given: str | None) -> str:
    """Where the other replicas reach this one: ``given`` (HOST:PORT), else the listen address,
    by this host's name when it listens on every interface."""
    if given is not None:
        host, port = parse_listen(given, 3000)
        return f"{url_host(host)}:{port}"
    host, port = parse_listen(listen, 3000)
    if host in ("0.0.0.0", "::", ""):
        return f"{socket.getfqdn()}:{port}"
    return f"{url_host(host)}:{port}"


def refuse_if_in_use(config: ServerConfig) -> None:
    """Stop before serving when another process serves this SQLite database (the app checks it
    too; here it is a clean message instead of a failed start)."""
    lock = sqlite_lock_for(database_url_of(config))
    if lock is None or not lock.path.parent.is_dir():
        return
    try:
        lock.acquire()
    except DatabaseInUse as exc:
        raise SystemExit(f"error: {exc}") from None
    lock.release()


def uvicorn_config(
    app: FastAPI,
    config: ServerConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log_level: str | None = None,
    **options: Any,
) -> uvicorn.Config:
    """How the chat server is served, for ``server``, ``up`` and the tests alike. The log levels
    are ``workdock.logs``' unless ``log_level`` is given (uvicorn would then set its own loggers')."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # our own format and secret redaction (workdock.logs)
        lifespan="on",
        timeout_graceful_shutdown=10,
        # X-Forwarded-Proto/-For are believed from the configured proxies only (none by default;
        # uvicorn's own default would trust 127.0.0.1).
        proxy_headers=bool(config.trusted_proxies),
        forwarded_allow_ips=list(config.trusted_proxies) or None,
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
    setup_logging(verbose, access_log=True)  # a shared server keeps an access log (secrets redacted)
    config_url = _config_url(listen)
    config = server_config(
        config_url,
        database_url,
        data_dir,
        public_url,
        proxies,
        max_result_bytes,
        replica_address_for(listen, replica_address),
    )
    refuse_if_in_use(config)
    sock, url = _bind(listen, "workdock server")
    where = "PostgreSQL" if database_url else f"SQLite in {config.data_dir}"
    # The banner comes first: what the start-up logs next (admin servers, migrations) follows it.
    out.print(f"workdock server on {url} ({where})")
    uvicorn.Server(uvicorn_config(create_app(config), config)).run(sockets=[sock])


def _config_url(listen: str) -> str:
    """The URL ``listen`` is reached at, checked before anything is bound."""
    try:
        host, port = parse_listen(listen, 3000)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    return f"http://{url_host(host)}:{port}"


@contextlib.contextmanager
def _no_signal_capture() -> Iterator[None]:
    """For the two uvicorn servers of ``run_up``: it handles the signals itself (they share a process)."""
    yield


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


async def _until_started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    while not server.started:
        if task.done():
            return False
        await asyncio.sleep(0.05)
    return True


async def _show_when_settled(runtime: AgentRuntime) -> None:
    """The servers' table once none is connecting; each change after it is a log line."""
    await runtime.hub.wait_until_settled(SETTLE_SECONDS)
    print_servers(out, runtime.hub.statuses(), title="MCP servers")
    for file in runtime.config_files:
        if file.state == "invalid":
            out.print(f"config file {file.path} is invalid: {file.error}; {kept_note(file.kept)}")


async def _up(directory: Path, listen: str, config: ServerConfig, agent_settings: AgentSettings) -> None:
    from workdock.agent.app import create_app as create_agent_app
    from workdock.agent.serve import uvicorn_server

    chat_sock, url = _bind(listen, "workdock up")
    agent_sock, agent_url = _bind("127.0.0.1:0", "workdock up (agent)")
    config.quiet = True  # `up` prints its own login URL below
    app = create_app(config)
    agent_token = agent_settings.token
    agent_app = create_agent_app(agent_settings)
    runtime: AgentRuntime = agent_app.state.runtime
    chat = uvicorn.Server(uvicorn_config(app, config))
    agent = uvicorn_server(agent_settings, app=agent_app)
    chat.capture_signals = agent.capture_signals = _no_signal_capture  # type: ignore[method-assign]

    def stop_both() -> None:
        chat.should_exit = agent.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_both)
    tasks = [asyncio.create_task(chat.serve(sockets=[chat_sock]), name="chat")]
    try:
        if not await _until_started(chat, tasks[0]):
            await asyncio.gather(*tasks, return_exceptions=True)
            raise SystemExit("error: workdock up: the chat server failed to start (see above)")
        record = write_record(
            UpRecord(
                pid=os.getpid(),
                workspace=str(directory),
                agent_url=agent_url,
                agent_token=agent_token,
                server_url=url,
            )
        )
        login = await register_workspace(app.state.services, directory, agent_url, agent_token)
        # The banner first; the agent (and its servers' log lines) starts after it.
        out.print(
            f"workdock is up for {directory}\n  open: {login}\n"
            "  (the link works once; `workdock login-url` prints a new one)\n"
            f"  server: {config.public_url}  agent: {agent_url}\n"
            f"  the CLI finds this agent through {record} (workdock tools, status, call)"
        )
        if not app.state.services.models.names:
            out.print(
                "  no model configured yet: set WORKDOCK_MODELS (e.g. openai:gpt-4.1 with OPENAI_API_KEY) "
                "and restart"
            )
        tasks.append(asyncio.create_task(agent.serve(sockets=[agent_sock]), name="agent"))
        if await _until_started(agent, tasks[1]):
            tasks.append(asyncio.create_task(_show_when_settled(runtime), name="table"))
        # Either server stopping (a signal, or a crash) ends both.
        await asyncio.wait(tasks[:2], return_when=asyncio.FIRST_COMPLETED)
    finally:
        remove_record(os.getpid())
        stop_both()
        for task in tasks[2:]:
            task.cancel()
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
    trust: bool = False,
    verbose: bool = False,
) -> None:
    """``workdock up``: the chat server and an agent for ``dir`` in one process, the workspace
    registered, and a login URL printed."""
    setup_logging(verbose, level=logging.WARNING)  # servers' state changes still show (workdock.logs)
    directory = (dir or Path.cwd()).resolve()
    if not directory.is_dir():
        raise SystemExit(f"error: workdock up: {directory} is not a directory")
    config = server_config(_config_url(listen), database_url, data_dir, public_url, proxies, max_result_bytes)
    refuse_if_in_use(config)
    # The agent shares this process, so its environment: the workspace's commands and MCP servers
    # must not get the server's own settings and secrets (provider keys, WORKDOCK_* tokens).
    agent_settings = AgentSettings(
        workspace=directory,
        token=secrets.token_urlsafe(32),
        max_result_bytes=config.max_result_bytes,
        withheld_env=server_only_env,
        trust_all=trust or trust_all_from_env(),
    )
    if not agent_settings.trust_all and sys.stdin.isatty():
        # Asked before anything starts: only what the user approves here starts with the agent.
        ask_for_approval(agent_settings, out)
    asyncio.run(_up(directory, listen, config, agent_settings))


if __name__ == "__main__":  # `python -m workdock.chat.cli_server --listen ... --data-dir ...` (tests)
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
    common = (args.listen, args.database_url, args.data_dir, args.public_url, args.trusted_proxy)
    if args.up is not None:
        run_up(args.up, *common, verbose=args.verbose)
    else:
        run_server(*common, verbose=args.verbose, replica_address=args.replica_address)
