"""The chat server's FastAPI app: wiring and lifecycle (migrate, first admin, recover, shut down)."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

from fastapi import FastAPI, Request
from sqlalchemy.exc import SQLAlchemyError

import workdock
from workdock.agent.child_env import workspace_env
from workdock.chat import datadir
from workdock.chat.api import agent_link, chats, mcp_servers, users, workspaces
from workdock.chat.api.schemas import Health
from workdock.chat.auth import login_url
from workdock.chat.chats import ChatManager
from workdock.chat.models import ModelCatalog, server_only_env
from workdock.chat.services import ServerConfig, Services
from workdock.chat.store.db import create_engine, migrate, sqlite_file, sqlite_url
from workdock.chat.store.faults import database_fault
from workdock.chat.store.repo import Store
from workdock.chat.stream import EventBus
from workdock.chat.tools.admin import AdminServers
from workdock.chat.tools.workspace import AgentPool
from workdock.chat.toolset import ToolGatherer
from workdock.chat.turn import TurnRunner
from workdock.http_errors import JSONResponse, error_response, install_error_handlers
from workdock.http_limits import BodyLimit
from workdock.http_openapi import without_422
from workdock.link.registry import LinkRegistry
from workdock.link.session import timings_from_env
from workdock.mcp.hub import Hub
from workdock.ratelimit import FailedAttempts
from workdock.secretbox import LoadedKey, SecretKeyError, load_key
from workdock.web import mount

logger = logging.getLogger(__name__)

ADMIN_TOKEN_FILE = "admin.token"


async def first_start(svc: Services) -> None:
    """No users yet: make the admin, print a one-time login URL, and leave an API token for the CLI."""
    if await svc.store.count_users():
        return
    admin = await svc.store.create_user("admin", is_admin=True)
    _, token = await svc.store.create_token(admin.id, "local cli")
    path = svc.config.data_dir / ADMIN_TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    url = await login_url(svc, admin)
    logger.info("created the admin user; its API token is in %s", path)
    if not svc.config.quiet:
        print(
            f"workdock: admin user created. Log in once at:\n  {url}\n"
            f"(the link works once; `workdock login-url` prints a new one)\nAPI token for the CLI: {path}",
            flush=True,
        )


async def open_secrets(store: Store, key: LoadedKey) -> None:
    """Stop the start with a clear message when the key does not open the stored secrets."""
    try:
        await store.check_secrets()
    except SecretKeyError as exc:
        hint = f"the key came from {key.source}"
        if key.created is not None:  # a new key cannot open old secrets: leave room for the old one
            key.created.unlink()
            hint = f"{key.created} was missing (a new one was made and removed again)"
        raise SecretKeyError(
            f"{exc}; {hint}. Start with the key they were sealed with: restore <data dir>/secret.key "
            f"or set WORKDOCK_SECRET_KEY"
        ) from None


def create_app(config: ServerConfig) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database_url = config.database_url or sqlite_url(config.data_dir / "workdock.db")
        datadir.prepare(config.data_dir, sqlite_file(database_url))
        key = load_key(config.data_dir, config.secret_key)
        engine = create_engine(database_url)
        async with AsyncExitStack() as stack:
            stack.push_async_callback(engine.dispose)
            await migrate(engine, key.box)
            store = Store(engine, key.box)
            await open_secrets(store, key)
            stack.callback(store.close)
            hub = await stack.enter_async_context(
                Hub(
                    workspace=config.data_dir,
                    # Admin servers are HTTP/SSE only; were one ever stdio, it would see no server secret.
                    child_env=partial(workspace_env, withheld=server_only_env),
                    connect_timeout=config.admin_connect_timeout,
                    max_result_bytes=config.max_result_bytes,
                )
            )
            ping_interval, silence_limit = timings_from_env()
            links = LinkRegistry(ping_interval=ping_interval, silence_limit=silence_limit)
            pool = AgentPool(links=links)
            stack.push_async_callback(pool.aclose)
            stack.push_async_callback(links.aclose)
            admin = AdminServers(hub, call_timeout=config.tool_timeout)
            models = config.models or ModelCatalog.from_env()
            gatherer = ToolGatherer(pool, admin)
            bus = EventBus()
            runner = TurnRunner(store, bus, gatherer, models, budget=config.tool_budget)
            manager = ChatManager(store, runner)
            svc = Services(
                config=config,
                store=store,
                bus=bus,
                pool=pool,
                admin=admin,
                gatherer=gatherer,
                models=models,
                chats=manager,
                attempts=FailedAttempts(config.auth_failures),
            )
            app.state.services = svc
            stack.callback(bus.close_all)
            stack.push_async_callback(manager.shutdown)
            await first_start(svc)
            await admin.apply(await store.list_mcp_servers())
            await manager.recover()
            yield

    # No /docs or /redoc: they load their script from a CDN. The document is at /openapi.json.
    app = FastAPI(
        title="workdock chat server",
        version=workdock.__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)

    @app.exception_handler(SQLAlchemyError)
    async def _database_error(_: Request, exc: SQLAlchemyError) -> JSONResponse:
        fault = database_fault(exc)
        if fault is None:
            raise exc  # a bug, not the disk's or the database server's doing: a logged 500
        logger.error("database: %s (%s)", fault.message, fault.detail)
        return error_response(fault.status, fault.message, fault.detail)

    app.add_middleware(BodyLimit, max_bytes=config.max_request_bytes)
    app.include_router(users.login_router)
    for module in (users, workspaces, mcp_servers, chats, agent_link):
        app.include_router(module.router)

    @app.get("/healthz", tags=["health"], response_model=Health)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    document = app.openapi
    app.openapi = lambda: without_422(document())  # type: ignore[method-assign]

    mount(app)  # the web UI at "/", after every API route so none is shadowed
    return app
