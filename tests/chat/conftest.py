"""Chat server test harness: a scripted fake model, the chat server (in a thread or as a child
process), a real agent with real MCP servers, and small API/SSE helpers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pytest
import uvicorn

from tests.chat.fake_openai import FakeOpenAI
from tests.conftest import NODE_BIN, free_port, require, wait_until_sync
from tests.support.agent import RunningAgent, write_config
from tests.support.postgres import PostgresServer, require_postgres, start_postgres
from tests.support.processes import stop_group
from workdock.chat.app import create_app
from workdock.chat.cli_server import uvicorn_config
from workdock.chat.datadir import ADMIN_TOKEN_FILE
from workdock.chat.history_cache import max_chats_from_env
from workdock.chat.models import ModelCatalog
from workdock.chat.services import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_REQUEST_BYTES,
    MAX_MESSAGE_BYTES_ENV,
    MAX_REQUEST_BYTES_ENV,
    ServerConfig,
    Services,
)
from workdock.http_limits import size_from_env
from workdock.ratelimit import RateLimitSettings
from workdock.secretbox import key_from_env

MODEL = "openai:fake-model"
T = TypeVar("T")


async def _run(work: Callable[[Services], Awaitable[T]], services: Services) -> T:
    return await work(services)


@pytest.fixture
def fake_model() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    fake.start(free_port())
    yield fake
    fake.stop()


def model_env(fake: FakeOpenAI) -> dict[str, str]:
    return {"OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "test-key", "WORKDOCK_MODELS": MODEL}


class Api:
    """A thin JSON client for the chat server's API, as one user."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.token = token
        self.http = httpx2.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = await self.http.request(method, "/api/v0" + path, **kwargs)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    async def get(self, path: str, expect: int = 200, **kwargs: Any) -> Any:
        return await self.request("GET", path, expect, **kwargs)

    async def post(self, path: str, body: Any = None, expect: int = 200) -> Any:
        return await self.request("POST", path, expect, json=body if body is not None else {})

    async def delete(self, path: str, expect: int = 204) -> Any:
        return await self.request("DELETE", path, expect)

    async def events(
        self,
        chat_id: str,
        until: Callable[[dict[str, Any]], bool],
        *,
        last_event_id: str | None = None,
        timeout: float = 30,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Read the chat's SSE stream until an event satisfies ``until``; (id, payload) pairs."""
        return await read_sse(self.http, chat_id, until, last_event_id=last_event_id, timeout=timeout)

    async def messages(self, chat_id: str) -> list[dict[str, Any]]:
        return (await self.get(f"/chats/{chat_id}/messages"))["messages"]

    async def wait_status(self, chat_id: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            chat = await self.get(f"/chats/{chat_id}")
            if chat["status"] in statuses and not chat["running"] and not chat["queued"]:
                return chat
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"chat stayed {chat['status']} (running={chat['running']}), wanted {statuses}"
                )
            await _sleep(0.02)


async def _sleep(seconds: float) -> None:
    import anyio

    await anyio.sleep(seconds)


async def read_sse(
    http: httpx2.AsyncClient,
    chat_id: str,
    until: Callable[[dict[str, Any]], bool],
    *,
    last_event_id: str | None = None,
    timeout: float = 30,
) -> list[tuple[str, dict[str, Any]]]:
    import anyio

    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    seen: list[tuple[str, dict[str, Any]]] = []
    with anyio.fail_after(timeout):
        async with http.stream("GET", f"/api/v0/chats/{chat_id}/stream", headers=headers) as response:
            assert response.status_code == 200, await response.aread()
            event_id, data = "", []
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    payload = json.loads("\n".join(data))
                    seen.append((event_id, payload))
                    data = []
                    if until(payload):
                        return seen
    raise AssertionError(f"stream ended early: {seen}")


class ChatServer:
    """The chat server on a free port: in a thread of this process, or as a child process."""

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str],
        *,
        database_url: str | None = None,
        tool_timeout: float = 60.0,
        subprocess_mode: bool = False,
        log_path: Path | None = None,
        wrap: tuple[str, ...] = (),
        args: tuple[str, ...] = (),
        max_result_bytes: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.env = env
        self.database_url = database_url
        self.tool_timeout = tool_timeout
        self.subprocess_mode = subprocess_mode
        self.wrap = wrap  # a command the server process runs under (subprocess mode)
        self.args = args  # more command-line arguments (subprocess mode)
        self.max_result_bytes = max_result_bytes  # (thread mode)
        self.log_path = log_path or data_dir.parent / f"{data_dir.name}-server.log"
        self.port = 0
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.app: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self, port: int | None = None) -> ChatServer:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if self.subprocess_mode:
            args = [
                *self.wrap,
                sys.executable,
                "-m",
                "workdock.chat.cli_server",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--data-dir",
                str(self.data_dir),
                *self.args,
            ]
            if self.database_url:
                args += ["--database-url", self.database_url]
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    args,
                    env={**os.environ, **self.env},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        else:
            environ = {**os.environ, **self.env}
            config = ServerConfig(
                data_dir=self.data_dir,
                database_url=self.database_url,
                public_url=self.url,
                tool_timeout=self.tool_timeout,
                models=ModelCatalog.from_env(self.env),
                quiet=True,
                auth_failures=RateLimitSettings.from_env(environ),
                secret_key=key_from_env(environ),
                max_request_bytes=size_from_env(MAX_REQUEST_BYTES_ENV, DEFAULT_MAX_REQUEST_BYTES, environ),
                max_message_bytes=size_from_env(MAX_MESSAGE_BYTES_ENV, DEFAULT_MAX_MESSAGE_BYTES, environ),
                history_cache_chats=max_chats_from_env(environ),
                **({"max_result_bytes": self.max_result_bytes} if self.max_result_bytes else {}),
            )
            # Served exactly as `workdock server` serves it (proxy headers, log filter).
            self.app = create_app(config)
            server = uvicorn.Server(
                uvicorn_config(self.app, config, "127.0.0.1", self.port, log_level="warning")
            )
            self._server = server
            # The server's own event loop, kept so that a test can run code in it (``call``).
            runner = asyncio.Runner(loop_factory=server.config.get_loop_factory())  # as server.run() does
            self.loop = runner.get_loop()

            def serve() -> None:
                with runner:  # as asyncio.run: what is left running is cancelled at the end
                    runner.run(server.serve())

            self._thread = threading.Thread(target=serve, name="chat-server", daemon=True)
            self._thread.start()
        wait_until_sync(self._healthy, timeout=90, message="the chat server to answer /healthz")
        return self

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"the chat server exited with {self.process.returncode}:\n"
                f"{self.log_path.read_text(errors='replace')}"
            )
        if self._thread is not None and not self._thread.is_alive():
            raise AssertionError("the chat server thread ended")
        try:
            return httpx2.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx2.TransportError:
            return False

    @property
    def services(self) -> Services:
        """The in-thread server's long-lived parts (its store, agent pool, links...)."""
        assert self.app is not None, "only a server in a thread of the tests has them at hand"
        services: Services = self.app.state.services
        return services

    async def call(self, work: Callable[[Services], Awaitable[T]]) -> T:
        """Run ``work`` in the in-thread server's event loop (its objects belong to that loop);
        cancelling the caller cancels ``work`` there too."""
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(_run(work, self.services), self.loop)
        return await asyncio.wrap_future(future)

    @property
    def admin_token(self) -> str:
        return (self.data_dir / ADMIN_TOKEN_FILE).read_text().strip()

    def kill(self) -> None:
        """SIGKILL the child process: no shutdown code runs (as in a crash or power loss)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=20)
            assert not self._thread.is_alive(), "the chat server did not shut down"
            self._server = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    pass
            stop_group(self.process.pid)
            self.process = None


@pytest.fixture
def start_chat_server(tmp_path: Path, fake_model: FakeOpenAI) -> Iterator[Callable[..., ChatServer]]:
    servers: list[ChatServer] = []

    def start(**kwargs: Any) -> ChatServer:
        env = {**model_env(fake_model), **kwargs.pop("env", {})}
        port = kwargs.pop("port", None)
        server = ChatServer(kwargs.pop("data_dir", tmp_path / "data"), env, **kwargs)
        servers.append(server)  # stopped after the test even when it never came up
        return server.start(port)

    yield start
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def chat_server(start_chat_server: Callable[..., ChatServer]) -> ChatServer:
    return start_chat_server()


@pytest.fixture
async def admin_api(chat_server: ChatServer) -> AsyncIterator[Api]:
    api = Api(chat_server.url, chat_server.admin_token)
    yield api
    await api.aclose()


@pytest.fixture
def everything_stdio() -> dict[str, Any]:
    """A .mcp.json entry running server-everything over stdio."""
    path = NODE_BIN / "mcp-server-everything"
    require(path.exists(), f"{path} is missing: run `npm ci` in tests/ (scripts/test does)")
    return {"command": str(path), "args": ["stdio"]}


@pytest.fixture
def start_agent(workspace_dir: Path, tmp_path: Path) -> Iterator[Callable[..., RunningAgent]]:
    agents: list[RunningAgent] = []

    def start(servers: dict[str, Any], env: dict[str, str] | None = None) -> RunningAgent:
        write_config(workspace_dir / ".mcp.json", servers)
        agent = RunningAgent(workspace_dir, tmp_path / f"agent-{len(agents)}.log", env=env)
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        agent.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (each test gets its own database)."""
    require_postgres()  # under CI=true a missing PostgreSQL fails the run instead of skipping
    yield from start_postgres(free_port())


_databases = iter(range(1, 1_000_000))


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database(f"test_{next(_databases)}")
