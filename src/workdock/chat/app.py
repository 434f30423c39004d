"""The chat server's FastAPI app: wiring and lifecycle (migrate, first admin, recover, shut down)."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

import workdock
from workdock.chat.api import chats, mcp_servers, users, workspaces
from workdock.chat.auth import login_url
from workdock.chat.chats import ChatManager
from workdock.chat.models import ModelCatalog
from workdock.chat.services import ServerConfig, Services
from workdock.chat.store.db import create_engine, migrate, sqlite_url
from workdock.chat.store.repo import Store
from workdock.chat.stream import EventBus
from workdock.chat.tools.admin import AdminServers
from workdock.chat.tools.workspace import AgentPool
from workdock.chat.toolset import ToolGatherer
from workdock.chat.turn import TurnRunner
from workdock.http_errors import install_error_handlers
from workdock.mcp.hub import Hub
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


def create_app(config: ServerConfig) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(config.database_url or sqlite_url(config.data_dir / "workdock.db"))
        async with AsyncExitStack() as stack:
            stack.push_async_callback(engine.dispose)
            await migrate(engine)
            store = Store(engine)
            stack.callback(store.close)
            hub = await stack.enter_async_context(
                Hub(workspace=config.data_dir, connect_timeout=config.admin_connect_timeout)
            )
            pool = AgentPool(call_timeout=config.tool_timeout)
            stack.push_async_callback(pool.aclose)
            admin = AdminServers(hub, call_timeout=config.tool_timeout)
            models = config.models or ModelCatalog.from_env()
            gatherer = ToolGatherer(pool, admin)
            bus = EventBus()
            runner = TurnRunner(store, bus, gatherer, models)
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
            )
            app.state.services = svc
            stack.callback(bus.close_all)
            stack.push_async_callback(manager.shutdown)
            await first_start(svc)
            await admin.apply(await store.list_mcp_servers())
            await manager.recover()
            yield

    app = FastAPI(title="workdock chat server", version=workdock.__version__, lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(users.login_router)
    for module in (users, workspaces, mcp_servers, chats):
        app.include_router(module.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    mount(app)  # the web UI at "/", after every API route so none is shadowed
    return app
