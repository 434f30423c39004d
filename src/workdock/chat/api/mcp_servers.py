"""Admin MCP servers: shared by every chat that has not opted out. Header values and OAuth client
secrets are never shown. A per-user server's status is the caller's own sign-in's."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Depends
from pydantic import BaseModel, Field, HttpUrl, field_validator, model_validator

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

Auth = Literal["headers", "oauth"]


class OAuthClient(BaseModel):
    """A client registered with the server's authorization server beforehand (else each user's is
    registered dynamically, RFC 7591)."""

    client_id: str = Field(min_length=1, max_length=500)
    client_secret: str | None = Field(default=None, min_length=1, max_length=2000)
    scopes: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        if any(not scope or len(scope) > 200 or " " in scope for scope in value):
            raise ValueError("each scope is 1 to 200 characters without spaces")
        return value


def _check_auth(auth: str | None, oauth: OAuthClient | None, headers: dict[str, str] | None) -> None:
    if oauth is not None and auth != "oauth":
        raise ValueError('\'oauth\' (a pre-registered client) goes with "auth": "oauth"')
    if auth == "oauth" and any(name.lower() == "authorization" for name in headers or {}):
        raise ValueError("a per-user OAuth server takes no Authorization header: each user's token is sent")


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
    auth: Auth = "headers"
    oauth: OAuthClient | None = None

    @model_validator(mode="after")
    def _auth(self) -> NewServer:
        _check_auth(self.auth, self.oauth, self.headers)
        return self


class ServerPatch(BaseModel):
    # Only the fields sent are changed; none of them takes null but ``oauth`` (null: no
    # pre-registered client).
    url: HttpUrl = HttpUrl(PLACEHOLDER_URL)
    transport: Literal["http", "sse"] = "http"
    headers: dict[str, str] = Field(default_factory=dict)
    allow_tools: list[str] = Field(default_factory=list)
    deny_tools: list[str] = Field(default_factory=list)
    enabled: bool = True
    auth: Auth = "headers"
    oauth: OAuthClient | None = None


def server_json(server: McpServer, status: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": server.id,
        "slug": server.slug,
        "url": server.url,
        "transport": server.transport,
        "headers_set": sorted(server.headers or {}),
        "auth": server.auth,
        "oauth": oauth_json(server.oauth),
        "allow_tools": server.allow_tools,
        "deny_tools": server.deny_tools,
        "enabled": server.enabled,
        "status": status
        or {"state": "disabled" if not server.enabled else "connecting", "tool_count": 0, "error": None},
        "created_at": server.created_at.isoformat(),
        "updated_at": server.updated_at.isoformat(),
    }


def oauth_json(oauth: dict[str, Any] | None) -> dict[str, Any] | None:
    if not oauth:
        return None
    return {
        "client_id": oauth.get("client_id"),
        "client_secret_set": bool(oauth.get("client_secret")),
        "scopes": list(oauth.get("scopes") or []),
    }


async def _reconcile(svc: Services) -> None:
    """Apply the change here, and have every other replica apply it too."""
    await svc.admin.reload(svc.store.list_mcp_servers)
    await svc.notifier.notify(notify.ADMIN)


@router.get("/mcp-servers", response_model=schemas.McpServerList, responses=schemas.reads(403))
async def list_servers(user: User = Depends(admin_user), svc: Services = Depends(services)) -> dict[str, Any]:
    statuses = await svc.admin.statuses(user.id)
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
    body: NewServer, user: User = Depends(admin_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    if any(s.slug == body.slug for s in await svc.store.list_mcp_servers()):
        raise ApiError(409, "slug taken", f"an MCP server with slug {body.slug!r} exists")
    server = await svc.store.create_mcp_server(**{**body.model_dump(), "url": str(body.url)})
    await _reconcile(svc)
    return server_json(server, (await svc.admin.statuses(user.id)).get(server.slug))


async def _get(svc: Services, server_id: str) -> McpServer:
    server = await svc.store.get_mcp_server(server_id)
    if server is None:
        raise ApiError(404, "no such MCP server")
    return server


@router.get(
    "/mcp-servers/{server_id}", response_model=schemas.McpServerOut, responses=schemas.reads(403, 404)
)
async def get_server(
    server_id: str, user: User = Depends(admin_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    server = await _get(svc, server_id)
    return server_json(server, (await svc.admin.statuses(user.id)).get(server.slug))


@router.patch(
    "/mcp-servers/{server_id}", response_model=schemas.McpServerOut, responses=schemas.writes(403, 404)
)
async def patch_server(
    server_id: str, body: ServerPatch, user: User = Depends(admin_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    old = await _get(svc, server_id)
    fields = body.model_dump(exclude_unset=True)
    if "url" in fields:
        fields["url"] = str(body.url)
    auth = fields.get("auth", old.auth)
    oauth = body.oauth if "oauth" in fields else None
    try:
        _check_auth(auth, oauth, fields.get("headers", old.headers))
    except ValueError as exc:
        raise ApiError(400, "not a valid change of the server's sign-in", str(exc)) from None
    if auth != "oauth" and "oauth" not in fields:
        fields["oauth"] = None  # back to static headers: no client of its own
    if old.auth == "oauth" and any(
        fields.get(name, getattr(old, name)) != getattr(old, name) for name in ("url", "auth", "oauth")
    ):
        # The users' sign-ins were for the old server or client: revoked, each signs in again.
        await _forget_signins(svc, old)
    server = await svc.store.update_mcp_server(server_id, **fields)
    assert server is not None
    await _reconcile(svc)
    return server_json(server, (await svc.admin.statuses(user.id)).get(server.slug))


async def _forget_signins(svc: Services, server: McpServer) -> None:
    if svc.admin.users is not None and server.auth == "oauth":
        await svc.admin.users.forget_server(server)


@router.delete("/mcp-servers/{server_id}", status_code=204, responses=schemas.writes(403, 404))
async def delete_server(
    server_id: str, _: User = Depends(admin_user), svc: Services = Depends(services)
) -> None:
    server = await _get(svc, server_id)
    await _forget_signins(svc, server)  # every user's tokens revoked where possible, then forgotten
    await svc.store.delete_mcp_server(server_id)
    await _reconcile(svc)
