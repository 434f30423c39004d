"""A user's workspaces: a linked agent (it dials in with a token shown once) or a directly
reachable one (agent URL + token, never shown again)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, HttpUrl, model_validator

from workdock.agent.token import TOKEN_ENV
from workdock.agentapi import AgentError
from workdock.chat.auth import current_user, services
from workdock.chat.services import Services
from workdock.chat.store.models import User, Workspace
from workdock.http_errors import ApiError
from workdock.link.session import CLOSE_REVOKED

router = APIRouter(prefix="/api/v0", tags=["workspaces"])

STATUS_BUDGET_S = 2.0
REFRESH_BUDGET_S = 35.0  # the agent waits for reconnects up to its own connect budget (30 s by default)


class NewWorkspace(BaseModel):
    """``{"name"}`` for an agent that dials in (linked); with ``agent_url`` and ``agent_token``
    for one the server can reach (direct)."""

    name: str = Field(min_length=1, max_length=200)
    agent_url: HttpUrl | None = None
    agent_token: str | None = Field(default=None, min_length=1)

    path: str | None = Field(default=None, min_length=1, max_length=4096)  # where it is: shown as detail

    @model_validator(mode="after")
    def _both_or_neither(self) -> NewWorkspace:
        if (self.agent_url is None) != (self.agent_token is None):
            raise ValueError("a direct workspace needs both agent_url and agent_token (a linked one neither)")
        return self


def workspace_json(workspace: Workspace) -> dict[str, Any]:
    return {
        "id": workspace.id,
        "name": workspace.name,
        "connection": workspace.connection,
        "path": workspace.path,
        "agent_url": workspace.agent_url,
        "agent_token_set": bool(workspace.agent_token or workspace.agent_token_hash),
        "created_at": workspace.created_at.isoformat(),
    }


def connect_block(svc: Services, request: Request, token: str) -> dict[str, Any]:
    """What a user pastes into the workspace to link its agent to this server."""
    server = svc.config.agent_server_url or str(request.base_url).rstrip("/")
    return {"command": f"workdock agent --server {server} --dir .", "env": {TOKEN_ENV: token}}


def _direct_link_fields(reachable: bool, error: str | None) -> dict[str, Any]:
    return {
        "connection": "direct",
        "connected": reachable,
        "connected_since": None,
        "disconnected_since": None,
        "last_error": error,
        "agent_version": None,
        "peer": None,
    }


async def agent_status(svc: Services, workspace: Workspace) -> dict[str, Any]:
    link = svc.pool.links.status(workspace.id, workspace.created_at) if workspace.linked else None
    away = svc.pool.unavailable(workspace)
    if away is not None:
        assert link is not None
        return {**link, "reachable": False, "error": away, "servers": [], "config_files": []}
    client = svc.pool.client(workspace)
    try:
        listing = await asyncio.wait_for(client.servers(timeout=STATUS_BUDGET_S), STATUS_BUDGET_S)
    except (AgentError, TimeoutError) as exc:
        error = str(exc) or "no answer in time"
        return {
            **(link or _direct_link_fields(False, error)),
            "reachable": False,
            "error": error,
            "servers": [],
            "config_files": [],
        }
    return {
        **(link or _direct_link_fields(True, None)),
        "reachable": True,
        "error": None,
        "servers": [
            {
                "name": s.name,
                "state": s.state,
                "tool_count": s.tool_count,
                "error": s.error,
                "transport": s.transport,
                "restarts": s.restarts,
                "stderr_tail": s.stderr_tail,
                "warnings": s.warnings,
            }
            for s in listing.servers
        ],
        "config_files": [f.model_dump() for f in listing.config_files],
    }


async def owned_workspace(svc: Services, workspace_id: str, user: User) -> Workspace:
    workspace = await svc.store.get_workspace(workspace_id, user.id)
    if workspace is None:  # someone else's is "not found" too
        raise ApiError(404, "no such workspace")
    return workspace


@router.post("/workspaces", status_code=201)
async def create_workspace(
    body: NewWorkspace,
    request: Request,
    user: User = Depends(current_user),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """A linked workspace (``{"name"}``: the answer holds its agent token, shown this once, and the
    command that connects the agent) or a direct one (``agent_url`` and ``agent_token``)."""
    if body.agent_url is None or body.agent_token is None:
        workspace, token = await svc.store.create_linked_workspace(user.id, body.name)
        return {
            **workspace_json(workspace),
            "agent_token": token,
            "connect": connect_block(svc, request, token),
        }
    workspace = await svc.store.create_workspace(
        user.id, body.name, str(body.agent_url).rstrip("/"), body.agent_token, path=body.path
    )
    return workspace_json(workspace)


@router.post("/workspaces/{workspace_id}/agent-token")
async def rotate_agent_token(
    workspace_id: str, request: Request, user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    """A new agent token for a linked workspace, shown once; the old one stops working at once and
    a link opened with it is closed."""
    workspace = await owned_workspace(svc, workspace_id, user)
    if not workspace.linked:
        raise ApiError(
            409,
            "a direct workspace has no link token",
            "its token is the agent's own: register the agent again with its new token",
        )
    token = await svc.store.rotate_agent_token(workspace.id)
    await svc.pool.links.disconnect(workspace.id, CLOSE_REVOKED, "the agent token was replaced")
    svc.pool.drop_catalog(workspace.id)
    return {**workspace_json(workspace), "agent_token": token, "connect": connect_block(svc, request, token)}


@router.get("/workspaces")
async def list_workspaces(
    user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    workspaces = await svc.store.list_workspaces(user.id)
    statuses = await asyncio.gather(*(agent_status(svc, w) for w in workspaces))
    return {
        "workspaces": [{**workspace_json(w), "agent": s} for w, s in zip(workspaces, statuses, strict=True)]
    }


@router.get("/workspaces/{workspace_id}")
async def get_workspace(
    workspace_id: str, user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    workspace = await owned_workspace(svc, workspace_id, user)
    return {**workspace_json(workspace), "agent": await agent_status(svc, workspace)}


@router.post("/workspaces/{workspace_id}/refresh")
async def refresh_workspace(
    workspace_id: str, user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Have the agent re-read its config and re-list every server, then answer like GET."""
    workspace = await owned_workspace(svc, workspace_id, user)
    client = svc.pool.client(workspace)
    try:
        await asyncio.wait_for(client.list_tools(refresh=True, timeout=REFRESH_BUDGET_S), REFRESH_BUDGET_S)
    except (AgentError, TimeoutError):
        pass  # the status below says what is wrong with the agent
    svc.pool.drop_catalog(workspace.id)  # the next turn lists the tools afresh
    return {**workspace_json(workspace), "agent": await agent_status(svc, workspace)}


@router.delete("/workspaces/{workspace_id}", status_code=204)
async def delete_workspace(
    workspace_id: str, user: User = Depends(current_user), svc: Services = Depends(services)
) -> None:
    await owned_workspace(svc, workspace_id, user)
    for chat in await svc.store.list_chats(user.id):
        if chat.workspace_id == workspace_id:
            await svc.chats.forget(chat.id)
            svc.bus.drop(chat.id)
    await svc.store.delete_workspace(workspace_id, user.id)
    svc.gatherer.forget(workspace_id)
    await svc.pool.links.disconnect(workspace_id, CLOSE_REVOKED, "the workspace was deleted")
    svc.pool.links.forget(workspace_id)
