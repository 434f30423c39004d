"""The chat server's FastAPI app: wiring and lifecycle (migrate, first admin, recover, shut down)."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

import workdock
from workdock.agent.child_env import workspace_env
from workdock.chat import datadir, notify
from workdock.chat.api import (
    agent_link,
    approvals,
    chats,
    mcp_servers,
    mcp_signin,
    resources,
    users,
    workspace_signin,
    workspace_trust,
    workspaces,
)
from workdock.chat.api.schemas import Health
from workdock.chat.api.workspace_signin import callback_url_of
from workdock.chat.auth import login_url
from workdock.chat.datadir import ADMIN_TOKEN_FILE
from workdock.chat.elicitations import ANSWER_PATH, ElicitationAnswers, answer_forwarded
from workdock.chat.eventlog import EventLog
from workdock.chat.history_cache import HistoryCache
from workdock.chat.links import LinkDirectory
from workdock.chat.models import ModelCatalog, server_only_env
from workdock.chat.replicas import ReplicaRegistry
from workdock.chat.scheduler import Scheduler
from workdock.chat.services import ServerConfig, Services
from workdock.chat.signins import PendingSignIns
from workdock.chat.sqlite_lock import SqliteLock
from workdock.chat.status_cache import StatusCache
from workdock.chat.store.db import create_engine, migrate, sqlite_file, sqlite_url
from workdock.chat.store.faults import database_fault
from workdock.chat.store.leases import Leases
from workdock.chat.store.repo import Store
from workdock.chat.tasks import spawn
from workdock.chat.tools.admin import AdminServers
from workdock.chat.tools.user_servers import USER_SIGN_IN_HINT, UserServers
from workdock.chat.tools.workspace import AgentPool
from workdock.chat.toolset import ToolGatherer
from workdock.chat.turn import TurnRunner
from workdock.http_errors import JSONResponse, error_response, install_error_handlers
from workdock.http_limits import BodyLimit
from workdock.http_openapi import without_422
from workdock.link.registry import LinkRegistry
from workdock.link.relay import RELAY_PATH, SECRET_HEADER, RelayClient, RelayEndpoint
from workdock.link.session import timings_from_env
from workdock.mcp.hub import Hub
from workdock.mcp.questions import Questions
from workdock.ratelimit import FailedAttempts, blocked_error, client_address
from workdock.secretbox import LoadedKey, SecretKeyError, load_key
from workdock.web import mount

logger = logging.getLogger(__name__)

CHAT_QUESTIONS = 1024  # requests for input waiting at once in all running turns


def _spawned(work: Coroutine[Any, Any, None]) -> None:
    spawn(work)


def _authorize_replica(svc: Services, scope: Scope, secret: str | None) -> tuple[int, str, str] | None:
    """A relayed request must carry the service secret; wrong ones count as failed logins do."""
    address = client_address(scope)
    wait = svc.attempts.retry_after(address)
    if wait is not None:
        return (429, *blocked_error(wait))
    if svc.replicas.check_secret(secret):
        return None
    svc.attempts.record_failure(address)
    return (401, "unauthorized", "replica-to-replica calls carry the service's secret")


async def first_start(svc: Services) -> None:
    """No users yet: make the admin, print a one-time login URL, and leave an API token for the CLI."""
    if await svc.store.count_users():
        return
    try:
        admin = await svc.store.create_user("admin", is_admin=True)
    except IntegrityError:  # another replica starting at the same moment made it
        return
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


def database_url_of(config: ServerConfig) -> str:
    return config.database_url or sqlite_url(config.data_dir / "workdock.db")


def replica_address_of(config: ServerConfig) -> str:
    if config.replica_address:
        return config.replica_address
    url = urlsplit(config.public_url)
    return f"{url.hostname}:{url.port or (443 if url.scheme == 'https' else 80)}"


def sqlite_lock_for(database_url: str) -> SqliteLock | None:
    database = sqlite_file(database_url)
    return SqliteLock(database) if database is not None else None


def create_app(config: ServerConfig) -> FastAPI:
    relay = RelayEndpoint()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database_url = database_url_of(config)
        datadir.prepare(config.data_dir, sqlite_file(database_url))
        async with AsyncExitStack() as stack:
            lock = sqlite_lock_for(database_url)
            if lock is not None:  # SQLite serves this process alone
                lock.acquire()
                stack.callback(lock.release)
            key = load_key(config.data_dir, config.secret_key)
            engine = create_engine(database_url)
            stack.push_async_callback(engine.dispose)
            await migrate(engine, key.box)
            store = Store(engine, key.box)
            await open_secrets(store, key)
            stack.callback(store.close)
            admin_hub = partial(
                Hub,
                workspace=config.data_dir,
                # Admin servers are HTTP/SSE only; were one ever stdio, it would see no server secret.
                child_env=partial(workspace_env, withheld=server_only_env),
                connect_timeout=config.admin_connect_timeout,
                max_result_bytes=config.max_result_bytes,
            )
            hub = await stack.enter_async_context(admin_hub())
            # Per-user OAuth servers: each user's own hub, its sign-ins sealed in the database,
            # revoked when the user signs out or the server is deleted (not when a hub closes).
            users = await stack.enter_async_context(
                UserServers(
                    store,
                    lambda vault: admin_hub(
                        vault=vault, revoke_removed=False, sign_in_hint=USER_SIGN_IN_HINT
                    ),
                    callback_url_of(config.public_url),
                )
            )
            # Wake-ups between replicas (PostgreSQL), or within this process (SQLite).
            notifier = notify.notifier_for(database_url)
            replicas = ReplicaRegistry(store, key.box, address=replica_address_of(config))
            directory = LinkDirectory(store, replicas, notifier)
            ping_interval, silence_limit = timings_from_env()
            links = LinkRegistry(
                ping_interval=ping_interval,
                silence_limit=silence_limit,
                directory=directory,
                relay=RelayClient(lambda: replicas.secret),
            )
            directory.links = links
            pool = AgentPool(links=links)
            admin = AdminServers(hub, call_timeout=config.tool_timeout, users=users)
            models = config.models or ModelCatalog.from_env()
            gatherer = ToolGatherer(pool, admin)
            events = EventLog(store, notifier)
            leases = Leases(store, ttl=config.scheduling.lease_s)
            questions = Questions(limit=CHAT_QUESTIONS)
            runner = TurnRunner(
                store,
                gatherer,
                models,
                leases=leases,
                owner=replicas.id,
                questions=questions,
                budget=config.tool_budget,
                history=HistoryCache(config.history_cache_chats),
            )
            scheduler = Scheduler(store, runner, events, notifier, replicas.id, config.scheduling, leases)
            svc = Services(
                config=config,
                store=store,
                events=events,
                pool=pool,
                admin=admin,
                gatherer=gatherer,
                models=models,
                scheduler=scheduler,
                attempts=FailedAttempts(config.auth_failures),
                notifier=notifier,
                replicas=replicas,
                questions=questions,
                elicitations=ElicitationAnswers(questions, store, replicas),
                signins=PendingSignIns(store),
                statuses=StatusCache(),
            )
            stack.push_async_callback(svc.elicitations.aclose)
            stack.push_async_callback(svc.statuses.aclose)
            app.state.services = svc
            # Admin servers changed, or tokens deleted, through any replica: this one follows.
            notifier.listen(notify.ADMIN, lambda _: _spawned(admin.reload(store.list_mcp_servers)))
            notifier.listen(notify.AUTH, lambda _: store.forget_tokens())
            await notifier.start()
            stack.push_async_callback(notifier.aclose)
            earlier_lives = await replicas.start()
            stack.push_async_callback(replicas.aclose)
            await directory.start(earlier_lives)
            stack.push_async_callback(pool.aclose)
            stack.push_async_callback(links.aclose)
            stack.push_async_callback(events.aclose)
            stack.push_async_callback(scheduler.shutdown)
            await first_start(svc)
            await admin.reload(store.list_mcp_servers)
            await scheduler.start(earlier_lives)
            relay.bind(
                links.local_session,
                lambda workspace_id: links.unavailable(workspace_id) or "not connected",
                partial(_authorize_replica, svc),
            )
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

    # The relay streams bodies into a link with its flow control (the agent applies its own limit).
    app.add_middleware(BodyLimit, max_bytes=config.max_request_bytes, exempt=(RELAY_PATH + "/",))
    app.include_router(users.login_router)
    app.include_router(workspace_signin.callback_router)
    for module in (
        users,
        workspaces,
        workspace_trust,
        workspace_signin,
        mcp_servers,
        mcp_signin,
        chats,
        approvals,
        resources,
        agent_link,
    ):
        app.include_router(module.router)
    # Replica to replica, authenticated by the service secret; not part of the API's document.
    app.router.routes.append(Route(RELAY_PATH + "/{workspace_id}", relay, include_in_schema=False))

    async def forwarded_answer(request: Request) -> Response:
        svc: Services = request.app.state.services
        refused = _authorize_replica(svc, request.scope, request.headers.get(SECRET_HEADER))
        if refused is not None:
            return error_response(*refused)
        return await answer_forwarded(svc.questions, request)

    app.router.routes.append(
        Route(
            ANSWER_PATH + "/{chat_id}/{elicitation_id}",
            forwarded_answer,
            methods=["POST"],
            include_in_schema=False,
        )
    )

    async def forwarded_sign_in(request: Request) -> Response:
        svc: Services = request.app.state.services
        refused = _authorize_replica(svc, request.scope, request.headers.get(SECRET_HEADER))
        if refused is not None:
            return error_response(*refused)
        answer: Response = await mcp_signin.finish_forwarded(svc, request)
        return answer

    app.router.routes.append(
        Route(mcp_signin.FORWARD_PATH, forwarded_sign_in, methods=["POST"], include_in_schema=False)
    )

    @app.get("/healthz", tags=["health"], response_model=Health)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    document = app.openapi
    app.openapi = lambda: without_422(document())  # type: ignore[method-assign]

    mount(app)  # the web UI at "/", after every API route so none is shadowed
    return app
