"""``workdock server`` and ``workdock up``: run the chat server (and, for ``up``, an agent beside it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from rich.console import Console

from workdock.agent.discovery import UpRecord, remove_record, write_record
from workdock.agent.runtime import AgentRuntime, AgentSettings
from workdock.chat.app import create_app
from workdock.chat.auth import login_url
from workdock.chat.services import ServerConfig, Services, default_data_dir
from workdock.listen import ListenError, bind, parse_listen, url_host
from workdock.logs import setup_logging
from workdock.mcp.config import kept_note
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


def server_config(
    url: str, database_url: str | None, data_dir: Path | None, public_url: str | None = None
) -> ServerConfig:
    return ServerConfig(
        data_dir=data_dir or default_data_dir(),
        database_url=database_url,
        public_url=public_url or url,
    )


def _uvicorn(app: object) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(
            app,  # type: ignore[arg-type]
            log_level="warning",
            log_config=None,  # our own format (workdock.logs)
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
    )


def run_server(
    listen: str = DEFAULT_LISTEN,
    database_url: str | None = None,
    data_dir: Path | None = None,
    public_url: str | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM. Migrations run on start; the first start prints a login URL."""
    setup_logging()
    sock, url = _bind(listen, "workdock server")
    config = server_config(url, database_url, data_dir, public_url)
    where = "PostgreSQL" if database_url else f"SQLite in {config.data_dir}"
    # The banner comes first: what the start-up logs next (admin servers, migrations) follows it.
    out.print(f"workdock server on {url} ({where})")
    _uvicorn(create_app(config)).run(sockets=[sock])


@contextlib.contextmanager
def _no_signal_capture() -> Iterator[None]:
    """For the two uvicorn servers of ``run_up``: it handles the signals itself (they share a process)."""
    yield


async def register_workspace(svc: Services, directory: Path, agent_url: str, agent_token: str) -> str:
    """The admin's workspace for ``directory`` (made once, its agent URL and token refreshed every
    start); returns a one-time login URL that opens it."""
    admins = [u for u in await svc.store.list_users() if u.is_admin]
    if not admins:
        raise RuntimeError("no admin user")
    admin = admins[0]
    name = str(directory)
    existing = [w for w in await svc.store.list_workspaces(admin.id) if w.name == name]
    if existing:
        await svc.store.update_workspace(existing[0].id, agent_url=agent_url, agent_token=agent_token)
        svc.pool.forget(existing[0].id)
    else:
        await svc.store.create_workspace(admin.id, name, agent_url, agent_token)
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


async def _up(directory: Path, listen: str, database_url: str | None, data_dir: Path | None) -> None:
    from workdock.agent.app import create_app as create_agent_app

    chat_sock, url = _bind(listen, "workdock up")
    agent_sock, agent_url = _bind("127.0.0.1:0", "workdock up (agent)")
    config = server_config(url, database_url, data_dir)
    config.quiet = True  # `up` prints its own login URL below
    app = create_app(config)
    agent_token = secrets.token_urlsafe(32)
    agent_app = create_agent_app(AgentSettings(workspace=directory, token=agent_token))
    runtime: AgentRuntime = agent_app.state.runtime
    chat, agent = _uvicorn(app), _uvicorn(agent_app)
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
            f"  server: {url}  agent: {agent_url}\n"
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
) -> None:
    """``workdock up``: the chat server and an agent for ``dir`` in one process, the workspace
    registered, and a login URL printed."""
    setup_logging(level=logging.WARNING)  # servers' state changes still show (workdock.logs)
    directory = (dir or Path.cwd()).resolve()
    if not directory.is_dir():
        raise SystemExit(f"error: workdock up: {directory} is not a directory")
    asyncio.run(_up(directory, listen, database_url, data_dir))


if __name__ == "__main__":  # `python -m workdock.chat.cli_server --listen ... --data-dir ...` (tests)
    import argparse

    parser = argparse.ArgumentParser(prog="workdock server")
    parser.add_argument("--listen", default=DEFAULT_LISTEN)
    parser.add_argument("--database-url")
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    run_server(args.listen, args.database_url, args.data_dir)
