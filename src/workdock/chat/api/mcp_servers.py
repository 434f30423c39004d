"""Admin MCP servers: shared by every chat that has not opted out. Header values are never shown."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Depends
from pydantic import BaseModel, Field, HttpUrl, field_validator

from workdock.chat import notify
from workdock.chat.api import schemas
from workdock.chat.auth import admin_user, services
from workdock.chat.services import Services
from workdock.chat.store.models import McpServer, User
from workdock.http_errors import ApiError
from workdock.http_json import api_router
from workdock.mcp.config import name_error

PLACEHOLDER_URL = "http://127.0.0.1/"  # never used: a default only stands for "not sent"
router = api_router(prefix="/api/v0", tags=["mcp-servers"])


class NewServer(BaseModel):
    slug: str

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        # Same rule as .mcp.json server names: the slug prefixes every tool name the model sees.
        error = name_error(value)
        if error:
            raise ValueError(error)
        return value

    url: HttpUrl
    transport: Literal["http", "sse"] = "http"
    headers: dict[str, str] = Field(default_factory=dict)
    allow_tools: list[str] = Field(default_factory=list)
    deny_tools: list[str] = Field(default_factory=list)
    enabled: bool = True


class ServerPatch(BaseModel):
    # Only the fields sent are changed; none of them takes null.
    url: HttpUrl = HttpUrl(PLACEHOLDER_URL)
    transport: Literal["http", "sse"] = "http"
    headers: dict[str, str] = Field(default_factory=dict)
    allow_tools: list[str] = Field(default_factory=list)
    deny_tools: list[str] = Field(default_factory=list)
    enabled: bool = True


def server_json(server: McpServer, status: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": server.id,
        "slug": server.slug,
        "url": server.url,
        "transport": server.transport,
        "headers_set": sorted(server.headers or {}),
        "allow_tools": server.allow_tools,
        "deny_tools": server.deny_tools,
        "enabled": server.enabled,
        "status": status
        or {"state": "disabled" if not server.enabled else "connecting", "tool_count": 0, "error": None},
        "created_at": server.created_at.isoformat(),
        "updated_at": server.updated_at.isoformat(),
    }


async def _reconcile(svc: Services) -> None:
    """Apply the change here, and have every other replica apply it too."""
    await svc.admin.reload(svc.store.list_mcp_servers)
    await svc.notifier.notify(notify.ADMIN)


@router.get("/mcp-servers", response_model=schemas.McpServerList, responses=schemas.reads(403))
async def list_servers(_: User = Depends(admin_user), svc: Services = Depends(services)) -> dict[str, Any]:
    statuses = svc.admin.statuses()
    return {"servers": [server_json(s, statuses.get(s.slug)) for s in await svc.store.list_mcp_servers()]}


@router.post(
    "/mcp-servers",
    status_code=201,
    response_model=schemas.McpServerOut,
    responses={
        **schemas.created(
            "server_id",
            ("get", "/api/v0/mcp-servers/{server_id}"),
            ("patch", "/api/v0/mcp-servers/{server_id}"),
            ("delete", "/api/v0/mcp-servers/{server_id}"),
        ),
        **schemas.writes(403, 409),
    },
)
async def create_server(
    body: NewServer, _: User = Depends(admin_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    if any(s.slug == body.slug for s in await svc.store.list_mcp_servers()):
        raise ApiError(409, "slug taken", f"an MCP server with slug {body.slug!r} exists")
    server = await svc.store.create_mcp_server(**{**body.model_dump(), "url": str(body.url)})
    await _reconcile(svc)
    return server_json(server, svc.admin.statuses().get(server.slug))


async def _get(svc: Services, server_id: str) -> McpServer:
    server = await svc.store.get_mcp_server(server_id)
    if server is None:
        raise ApiError(404, "no such MCP server")
    return server


@router.get(
    "/mcp-servers/{server_id}", response_model=schemas.McpServerOut, responses=schemas.reads(403, 404)
)
async def get_server(
    server_id: str, _: User = Depends(admin_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    server = await _get(svc, server_id)
    return server_json(server, svc.admin.statuses().get(server.slug))


@router.patch(
    "/mcp-servers/{server_id}", response_model=schemas.McpServerOut, responses=schemas.writes(403, 404)
)
async def patch_server(
    server_id: str, body: ServerPatch, _: User = Depends(admin_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    await _get(svc, server_id)
    fields = body.model_dump(exclude_unset=True)
    if "url" in fields:
        fields["url"] = str(body.url)
    server = await svc.store.update_mcp_server(server_id, **fields)
    assert server is not None
    await _reconcile(svc)
    return server_json(server, svc.admin.statuses().get(server.slug))


@router.delete("/mcp-servers/{server_id}", status_code=204, responses=schemas.writes(403, 404))
async def delete_server(
    server_id: str, _: User = Depends(admin_user), svc: Services = Depends(services)
) -> None:
    await _get(svc, server_id)
    await svc.store.delete_mcp_server(server_id)
    await _reconcile(svc)
