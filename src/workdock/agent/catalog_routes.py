"""The agent's resources and prompts routes, under /api/v0/mcp beside the tools.

Listings carry the catalog version as their ETag (one version for every kind),
reads and prompts answer with the same statuses as call-tool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from workdock import agentapi
from workdock.agent.disconnect import until_disconnect
from workdock.agent.etag import REFRESH_PARAMETER, etag_matches, wants_refresh
from workdock.agent.runtime import AgentRuntime
from workdock.http_errors import ApiError, JSONResponse
from workdock.http_json import api_router
from workdock.http_openapi import error_responses
from workdock.mcp.content import prompt_to_dict, resource_contents_to_wire
from workdock.mcp.hub import Catalog, CatalogPrompt, CatalogResource, CatalogTemplate, HubError

REFRESH_WAIT = 10.0


def _dump(model: Any) -> dict[str, Any] | None:
    return model.model_dump(by_alias=True, exclude_none=True) if model is not None else None


def resource_entry(item: CatalogResource) -> dict[str, Any]:
    r = item.resource
    return {
        "id": item.id,
        "server_name": item.server,
        "uri": r.uri,
        "name": r.name,
        "title": r.title,
        "description": r.description,
        "mime_type": r.mime_type,
        "size": r.size,
        "annotations": _dump(r.annotations),
    }


def template_entry(item: CatalogTemplate) -> dict[str, Any]:
    t = item.template
    return {
        "server_name": item.server,
        "uri_template": t.uri_template,
        "name": t.name,
        "title": t.title,
        "description": t.description,
        "mime_type": t.mime_type,
    }


def prompt_entry(item: CatalogPrompt) -> dict[str, Any]:
    p = item.prompt
    return {
        "server_name": item.server,
        "name": item.name,
        "original_name": item.original_name,
        "title": p.title,
        "description": p.description,
        "arguments": [
            {"name": a.name, "description": a.description, "required": bool(a.required)}
            for a in p.arguments or []
        ],
    }


class _ListingCache:
    """A listing's body, serialised once per catalog version."""

    def __init__(self, key: str, entries: Callable[[Catalog], list[dict[str, Any]]]) -> None:
        self._key = key
        self._entries = entries
        self._version = -1
        self._body = b""

    def body(self, catalog: Catalog) -> bytes:
        if catalog.version != self._version:
            self._body = orjson.dumps({"version": str(catalog.version), self._key: self._entries(catalog)})
            self._version = catalog.version
        return self._body


def _body_schema(model: type[agentapi.WireModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def catalog_router(runtime: AgentRuntime) -> APIRouter:
    router = api_router(prefix="/api/v0/mcp", tags=["mcp"])
    listings = {
        "resources": _ListingCache("resources", lambda c: [resource_entry(r) for r in c.resources]),
        "resource-templates": _ListingCache(
            "resource_templates", lambda c: [template_entry(t) for t in c.templates]
        ),
        "prompts": _ListingCache("prompts", lambda c: [prompt_entry(p) for p in c.prompts]),
    }

    async def listing(request: Request, kind: str) -> Response:
        if wants_refresh(request.query_params.get("refresh")):
            await runtime.reload()
            await runtime.hub.refresh(timeout=min(REFRESH_WAIT, runtime.settings.connect_timeout))
        catalog = runtime.hub.catalog
        version = str(catalog.version)
        etag = f'"{version}"'
        if etag_matches(request.headers.get("if-none-match"), version):
            return Response(status_code=304, headers={"ETag": etag})
        return Response(listings[kind].body(catalog), media_type="application/json", headers={"ETag": etag})

    listed: dict[int | str, dict[str, Any]] = {
        304: {"description": "Not modified"},
        **error_responses(401, 429),
    }

    @router.get(
        "/resources", response_model=agentapi.ResourceList, openapi_extra=REFRESH_PARAMETER, responses=listed
    )
    async def list_resources(request: Request) -> Response:
        """Every ready server's resources, sorted by URI; ETag is the catalog version."""
        return await listing(request, "resources")

    @router.get(
        "/resource-templates",
        response_model=agentapi.ResourceTemplateList,
        openapi_extra=REFRESH_PARAMETER,
        responses=listed,
    )
    async def list_resource_templates(request: Request) -> Response:
        """Every ready server's resource templates (RFC 6570 URI templates); ETag is the catalog version."""
        return await listing(request, "resource-templates")

    @router.get(
        "/prompts", response_model=agentapi.PromptList, openapi_extra=REFRESH_PARAMETER, responses=listed
    )
    async def list_prompts(request: Request) -> Response:
        """Every ready server's prompts as <server>__<prompt>, sorted by name; ETag is the catalog version."""
        return await listing(request, "prompts")

    @router.post(
        "/read-resource",
        response_model=agentapi.ReadResourceResult,
        responses=error_responses(400, 401, 404, 413, 429, 502, 504),
    )
    async def read_resource(request: Request, body: agentapi.ReadResourceRequest) -> JSONResponse:
        """Read a resource by URI (or offered id); ``server`` is needed only when several offer it."""
        timeout = body.timeout_ms / 1000 if body.timeout_ms is not None else None
        try:
            server, result = await until_disconnect(
                request.receive, runtime.hub.read_resource(body.uri, body.server, timeout)
            )
        except HubError as exc:
            raise ApiError(exc.status, exc.message) from None
        return JSONResponse(
            {"server_name": server, "uri": body.uri, "contents": resource_contents_to_wire(result.contents)}
        )

    @router.post(
        "/get-prompt",
        response_model=agentapi.GetPromptResult,
        responses=error_responses(400, 401, 404, 413, 429, 502, 504),
    )
    async def get_prompt(request: Request, body: agentapi.GetPromptRequest) -> JSONResponse:
        """A prompt's messages, filled in with ``arguments`` (all strings, as MCP has them)."""
        timeout = body.timeout_ms / 1000 if body.timeout_ms is not None else None
        try:
            prompt, result = await until_disconnect(
                request.receive, runtime.hub.get_prompt(body.name, body.arguments, timeout)
            )
        except HubError as exc:
            raise ApiError(exc.status, exc.message) from None
        return JSONResponse(prompt_to_dict(prompt.name, prompt.server, result))

    return router
