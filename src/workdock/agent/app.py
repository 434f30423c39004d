"""The agent's HTTP API (spec/agent.md section 4) over a hub, plus the workspace operations."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, FastAPI, Request, Response

from workdock import __version__, agentapi
from workdock.agent.auth import BearerAuth
from workdock.agent.catalog_routes import catalog_router
from workdock.agent.disconnect import until_disconnect
from workdock.agent.etag import REFRESH_PARAMETER, etag_matches, wants_refresh
from workdock.agent.runtime import AgentRuntime, AgentSettings
from workdock.agent.workspace.processes import ProcessTable
from workdock.agent.workspace.router import workspace_router
from workdock.http_errors import ApiError, JSONResponse, install_error_handlers
from workdock.http_json import api_router
from workdock.http_limits import BodyLimit
from workdock.http_openapi import error_responses, without_422
from workdock.mcp.content import result_to_dict
from workdock.mcp.hub import Catalog, Hub, HubError
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
MAX_TIMEOUT_MS = 600_000


def parse_call_request(raw: bytes) -> tuple[str, dict[str, Any], int | None]:
    """Validate a call-tool body: (tool_name, arguments, timeout_ms) or an ApiError 400."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "the body is not JSON", str(exc)) from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    tool_name = body.get("tool_name")
    if not isinstance(tool_name, str) or not tool_name:
        raise ApiError(400, "tool_name is required and must be a non-empty string")
    arguments = body.get("arguments")
    if arguments is None:
        arguments = {}
    elif not isinstance(arguments, dict):
        raise ApiError(400, "arguments must be a JSON object")
    timeout_ms = body.get("timeout_ms")
    if timeout_ms is not None and (
        isinstance(timeout_ms, bool)
        or not isinstance(timeout_ms, int)
        or not 0 < timeout_ms <= MAX_TIMEOUT_MS
    ):
        raise ApiError(400, f"timeout_ms must be a positive integer of at most {MAX_TIMEOUT_MS}")
    return tool_name, arguments, timeout_ms


def mcp_router(runtime: AgentRuntime) -> APIRouter:
    router = api_router(prefix="/api/v0/mcp", tags=["mcp"])
    tool_list = _ToolListCache()

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
        responses=error_responses(400, 401, 404, 413, 429, 502, 504),
        openapi_extra=_CALL_TOOL_BODY,
    )
    async def call_tool(request: Request) -> JSONResponse:
        """Call a tool by its offered name; a tool that ran and failed is a 200 with ``is_error``."""
        tool_name, arguments, timeout_ms = parse_call_request(await request.body())
        timeout = timeout_ms / 1000 if timeout_ms is not None else None
        try:
            # If the caller hangs up (a chat turn interrupted), the call is cancelled upstream too.
            result = await until_disconnect(request, runtime.hub.call(tool_name, arguments, timeout))
        except HubError as exc:
            raise ApiError(exc.status, exc.message) from None
        return JSONResponse(result_to_dict(result))

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
    hub = Hub(
        workspace=settings.workspace,
        connect_timeout=settings.connect_timeout,
        child_env=settings.child_env,
        max_result_bytes=settings.max_result_bytes,
    )
    runtime = AgentRuntime(settings=settings, hub=hub)
    processes = ProcessTable(environment=settings.child_env) if settings.workspace_ops else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with hub, anyio.create_task_group() as tg:
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
    app = FastAPI(
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
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    # Outermost: a request without the token learns nothing, not even the body limit.
    app.add_middleware(BearerAuth, token=settings.token, attempts=FailedAttempts(settings.auth_failures))

    @app.get("/healthz", tags=["health"], response_model=agentapi.Health)
    async def healthz() -> dict[str, str]:
        """Up and answering, whatever the servers' states."""
        return {"status": "ok"}

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        return _with_bearer_security(without_422(app.openapi()))

    app.include_router(mcp_router(runtime))
    app.include_router(catalog_router(runtime))
    if processes is not None:
        app.include_router(workspace_router(settings.workspace, processes))
    return app
