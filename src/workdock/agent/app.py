"""The agent's HTTP API (spec/agent.md section 4) over a hub, plus the workspace operations."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
import orjson
from fastapi import APIRouter, FastAPI, Path, Request, Response

from workdock import __version__, agentapi
from workdock.agent.auth import BearerAuth
from workdock.agent.call_route import CallToolEndpoint, HotPathApp, call_body, parse_call_request
from workdock.agent.catalog_routes import catalog_router
from workdock.agent.etag import REFRESH_PARAMETER, etag_matches, wants_refresh
from workdock.agent.fast_call import FastCallRoute
from workdock.agent.mcp_route import McpEndpoint
from workdock.agent.runtime import AgentRuntime, AgentSettings, new_hub
from workdock.agent.streaming import Emit, event_stream, sse_openapi, wants_events
from workdock.agent.trust_routes import trust_router
from workdock.agent.workspace.processes import ProcessTable
from workdock.agent.workspace.router import workspace_router
from workdock.http_errors import ApiError, JSONResponse, install_error_handlers
from workdock.http_json import api_router
from workdock.http_limits import BodyLimit
from workdock.http_openapi import error_responses, without_422
from workdock.mcp.hooks import CallHooks
from workdock.mcp.hub import Catalog, HubError
from workdock.mcp.oauth import SignInError, check_redirect_uri
from workdock.mcp.questions import QuestionError, Questions, too_many
from workdock.ratelimit import FailedAttempts

logger = logging.getLogger(__name__)

DEFAULT_REFRESH_WAIT = 10.0


def _tool_entry(tool: Any) -> dict[str, Any]:
    schema = tool.tool.input_schema or {}
    annotations = tool.tool.annotations
    return {
        "server_name": tool.server,
        "name": tool.name,
        "original_name": tool.original_name,
        "description": tool.tool.description or "",
        "schema": schema.get("properties") or {},
        "required": schema.get("required") or [],
        "input_schema": schema,
        "output_schema": tool.tool.output_schema,
        "annotations": annotations.model_dump(by_alias=True, exclude_none=True) if annotations else None,
    }


class _ToolListCache:
    """The tools response body, serialised once per catalog version (the hot path is a dict lookup)."""

    def __init__(self) -> None:
        self._version = -1
        self._body = b""

    def body(self, catalog: Catalog) -> bytes:
        if catalog.version != self._version:
            self._body = orjson.dumps(
                {"version": str(catalog.version), "tools": [_tool_entry(t) for t in catalog.tools]}
            )
            self._version = catalog.version
        return self._body


# The body is parsed by hand (whatever its Content-Type) so each mistake gets its own clear 400.
_CALL_TOOL_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": agentapi.CallToolRequest.model_json_schema()}},
    }
}
_CALL_EVENTS = (
    'event: progress\ndata: {"progress": 1, "total": 5, "message": null}\n\n'
    'event: elicitation\ndata: {"id": "…", "mode": "form", "message": "…", "requested_schema": {}}\n\n'
    'event: result\ndata: {"content": [], "is_error": false, "structured_content": null}\n\n'
)


def mcp_router(runtime: AgentRuntime) -> APIRouter:
    router = api_router(prefix="/api/v0/mcp", tags=["mcp"])
    tool_list = _ToolListCache()
    questions = Questions()

    @router.get(
        "/tools",
        response_model=agentapi.ToolList,
        responses={304: {"description": "Not modified"}, **error_responses(401, 429)},
        openapi_extra=REFRESH_PARAMETER,
    )
    async def list_tools(request: Request) -> Response:
        """The catalog of every ready server's tools, sorted by name; ETag is the catalog version."""
        if wants_refresh(request.query_params.get("refresh")):
            await runtime.reload()
            await runtime.hub.refresh(timeout=min(DEFAULT_REFRESH_WAIT, runtime.settings.connect_timeout))
        catalog = runtime.hub.catalog
        version = str(catalog.version)
        etag = f'"{version}"'
        if etag_matches(request.headers.get("if-none-match"), version):
            return Response(status_code=304, headers={"ETag": etag})
        return Response(tool_list.body(catalog), media_type="application/json", headers={"ETag": etag})

    @router.post(
        "/call-tool",
        response_model=agentapi.CallToolResult,
        responses={
            200: {
                "description": "The result; with `Accept: text/event-stream`, Server-Sent Events: "
                "`progress`, `elicitation`, then one `result` (this body) or `error` (status and error)",
                **sse_openapi(_CALL_EVENTS),
            },
            **error_responses(400, 401, 404, 413, 429, 502, 504),
        },
        openapi_extra=_CALL_TOOL_BODY,
    )
    async def call_tool(request: Request) -> Response:
        """Call a tool by its offered name; a tool that ran and failed is a 200 with ``is_error``."""
        raw = await request.body()
        if not wants_events(request):
            # HotPathApp answers these before routing; this is the same answer, should one get here.
            body = await call_body(runtime.hub, raw, request.receive)
            return Response(body, media_type="application/json")
        tool_name, arguments, timeout_ms = parse_call_request(raw)
        timeout = timeout_ms / 1000 if timeout_ms is not None else None
        if not runtime.hub.has_tool(tool_name):  # known before anything streams: a plain 404
            raise ApiError(404, f"no tool named {tool_name!r} in the catalog")
        return event_stream(lambda emit: _streamed_call(tool_name, arguments, timeout, emit))

    async def _streamed_call(
        tool_name: str, arguments: dict[str, Any], timeout: float | None, emit: Emit
    ) -> dict[str, Any]:
        owner = object()  # this call's questions, closed (as cancelled) when it ends

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            emit("progress", {"progress": progress, "total": total, "message": message})

        async def ask(params: types.ElicitRequestParams) -> types.ElicitResult:
            question = questions.open(params, owner)
            if question is None:
                return too_many()
            emit("elicitation", question.describe())
            try:
                return await question.wait()
            finally:
                questions.close(question)  # answered or not: its id stays known (409) once answered

        try:
            return await runtime.hub.call_wire(tool_name, arguments, timeout, CallHooks(on_progress, ask))
        except HubError as exc:
            raise ApiError(exc.status, exc.message) from None
        finally:
            for question in questions.owned_by(owner):
                questions.close(question)

    @router.post(
        "/elicitations/{elicitation_id}",
        response_model=agentapi.ElicitationAnswered,
        responses=error_responses(400, 401, 404, 409, 413, 429),
    )
    async def answer_elicitation(
        body: agentapi.ElicitationAnswer,
        elicitation_id: str = Path(max_length=64, description="the id of an `elicitation` event"),
    ) -> agentapi.ElicitationAnswered:
        """Answer a request for input that a streaming call-tool relayed; one answer each."""
        try:
            result = questions.answer(elicitation_id, body.action, body.content)
        except QuestionError as exc:
            raise ApiError(exc.status, exc.message, exc.detail) from None
        return agentapi.ElicitationAnswered(id=elicitation_id, action=result.action)

    @router.get("/servers", response_model=agentapi.ServerList, responses=error_responses(401, 429))
    async def servers() -> agentapi.ServerList:
        """Every declared server's state, and every config file looked at."""
        return agentapi.ServerList(
            servers=runtime.hub.statuses(),
            config_files=[
                agentapi.ConfigFileStatus(
                    path=f.path,
                    state=f.state,
                    error=f.error,
                    warnings=list(f.warnings),
                    kept_servers=list(f.kept),
                )
                for f in runtime.config_files
            ],
        )

    @router.post(
        "/servers/{name}/auth/callback",
        status_code=204,
        responses=error_responses(400, 401, 404, 409, 429),
    )
    async def auth_callback(name: str, callback: agentapi.AuthCallback) -> Response:
        """Finish a server's sign-in with the code its authorization server sent to the redirect URI."""
        try:
            runtime.hub.deliver_auth(name, callback.code, callback.state, callback.iss)
        except SignInError as exc:
            raise ApiError(exc.status, exc.message) from None
        return Response(status_code=204)

    @router.post(
        "/servers/{name}/auth/start",
        response_model=agentapi.AuthStarted,
        responses=error_responses(400, 401, 404, 409, 429, 502, 504),
    )
    async def auth_start(name: str, body: agentapi.AuthStart) -> agentapi.AuthStarted:
        """Start a server's waiting sign-in again, redirecting to ``redirect_uri`` (the chat server's
        callback; null for the loopback one ``workdock auth`` listens on): a fresh state and PKCE
        verifier, and the authorization URL to open. The old URL's code is refused from then on."""
        if body.redirect_uri is not None and (problem := check_redirect_uri(body.redirect_uri)):
            raise ApiError(400, "not a usable redirect URI", problem)
        try:
            url = await runtime.hub.restart_sign_in(name, body.redirect_uri)
        except SignInError as exc:
            raise ApiError(exc.status, exc.message) from None
        return agentapi.AuthStarted(authorization_url=url)

    return router


def _with_bearer_security(schema: dict[str, Any]) -> dict[str, Any]:
    """Say in the document what the middleware enforces: a bearer token everywhere but /healthz."""
    schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The agent token",
    }
    schema["security"] = [{"bearer": []}]
    if health := schema.get("paths", {}).get("/healthz", {}).get("get"):
        health["security"] = []
    return schema


def create_app(settings: AgentSettings) -> FastAPI:
    """The agent's ASGI app; its lifespan owns the hub, the config watcher and the processes."""
    hub = new_hub(settings)
    runtime = AgentRuntime(settings=settings, hub=hub)
    processes = ProcessTable(environment=settings.child_env) if settings.workspace_ops else None
    mcp_endpoint = McpEndpoint(
        hub,
        listen_host=settings.host,
        max_request_bytes=settings.max_request_bytes,
        max_sessions=settings.max_mcp_sessions,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with hub, mcp_endpoint.running(), anyio.create_task_group() as tg:
            await runtime.reload()
            if settings.watch:
                tg.start_soon(runtime.watch_config)
            try:
                yield
            finally:
                runtime.stop_watching()
                tg.cancel_scope.cancel()
                # Servers and commands end side by side: the exit must stay within seconds.
                with anyio.CancelScope(shield=True):
                    async with anyio.create_task_group() as closing:
                        closing.start_soon(hub.stop_all)
                        if processes is not None:
                            closing.start_soon(processes.shutdown)

    # The OpenAPI document comes from a route of our own: it adds the bearer scheme the middleware enforces.
    app = HotPathApp(
        title="workdock agent",
        version=__version__,
        lifespan=lifespan,
        default_response_class=JSONResponse,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    attempts = FailedAttempts(settings.auth_failures)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    # Outermost: a request without the token learns nothing, not even the body limit.
    app.add_middleware(BearerAuth, token=settings.token, attempts=attempts)
    # The plain call-tool's own chain, in the same order, sharing the count of failed attempts.
    # Any MCP client: the catalog as one streamable-HTTP server, the same token; the SDK's
    # transport limits its bodies to the same size.
    app.mcp_path = BearerAuth(mcp_endpoint, token=settings.token, attempts=attempts)
    call_auth = BearerAuth(
        BodyLimit(CallToolEndpoint(hub), max_bytes=settings.max_request_bytes),
        token=settings.token,
        attempts=attempts,
    )
    app.hot_path = call_auth
    # Its happy path once more, answered by the HTTP protocol itself (agent/fast_call.py).
    app.fast_call = FastCallRoute(hub, call_auth, settings.max_request_bytes, mcp_endpoint)

    @app.get("/healthz", tags=["health"], response_model=agentapi.Health)
    async def healthz() -> dict[str, str]:
        """Up and answering, whatever the servers' states."""
        return {"status": "ok"}

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        return _with_bearer_security(without_422(app.openapi()))

    app.include_router(mcp_router(runtime))
    app.include_router(trust_router(runtime))
    app.include_router(catalog_router(runtime))
    if processes is not None:
        app.include_router(workspace_router(settings.workspace, processes))
    return app
