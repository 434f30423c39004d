"""A user's workspaces: agent URL + token (the token is never shown again)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import Depends
from pydantic import BaseModel, Field, HttpUrl

from workdock.agentapi import AgentError
from workdock.chat.api import schemas
from workdock.chat.auth import current_user, services
from workdock.chat.services import Services
from workdock.chat.store.models import User, Workspace
from workdock.http_errors import ApiError
from workdock.http_json import api_router

logger = logging.getLogger(__name__)
router = api_router(prefix="/api/v0", tags=["workspaces"])

STATUS_BUDGET_S = 2.0
REFRESH_BUDGET_S = 35.0  # the agent waits for reconnects up to its own connect budget (30 s by default)


class NewWorkspace(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    agent_url: HttpUrl
    # Sent on as an HTTP header: visible ASCII only (a header cannot carry anything else).
    agent_token: str = Field(min_length=1, max_length=4096, pattern=r"^[\x21-\x7e]+$")


def workspace_json(workspace: Workspace) -> dict[str, Any]:
    return {
        "id": workspace.id,
        "name": workspace.name,
        "agent_url": workspace.agent_url,
        "agent_token_set": bool(workspace.agent_token),
        "created_at": workspace.created_at.isoformat(),
    }


def _unreachable(error: str) -> dict[str, Any]:
    return {"reachable": False, "error": error, "servers": [], "config_files": []}


async def agent_status(svc: Services, workspace: Workspace) -> dict[str, Any]:
    """The agent's state; whatever goes wrong is this workspace's error, never the whole answer's."""
    try:
        client = svc.pool.client(workspace.id, workspace.agent_url, workspace.agent_token)
        listing = await asyncio.wait_for(client.servers(timeout=STATUS_BUDGET_S), STATUS_BUDGET_S)
    except (AgentError, TimeoutError) as exc:
        return _unreachable(str(exc) or "no answer in time")
    except Exception as exc:
        logger.warning("workspace %s: agent status failed: %r", workspace.id, exc)
        return _unreachable(f"cannot reach the agent: {type(exc).__name__}: {exc}")
    return {
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


@router.post(
    "/workspaces",
    status_code=201,
    response_model=schemas.WorkspaceOut,
    responses={
        **schemas.created(
            "workspace_id",
            ("get", "/api/v0/workspaces/{workspace_id}"),
            ("post", "/api/v0/workspaces/{workspace_id}/refresh"),
            ("delete", "/api/v0/workspaces/{workspace_id}"),
        ),
        **schemas.writes(),
    },
)
async def create_workspace(
    body: NewWorkspace, user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    workspace = await svc.store.create_workspace(
        user.id, body.name, str(body.agent_url).rstrip("/"), body.agent_token
    )
    return workspace_json(workspace)


@router.get("/workspaces", response_model=schemas.WorkspaceList, responses=schemas.reads())
async def list_workspaces(
    user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    workspaces = await svc.store.list_workspaces(user.id)
    statuses = await asyncio.gather(*(agent_status(svc, w) for w in workspaces))
    return {
        "workspaces": [{**workspace_json(w), "agent": s} for w, s in zip(workspaces, statuses, strict=True)]
    }


@router.get(
    "/workspaces/{workspace_id}", response_model=schemas.WorkspaceDetail, responses=schemas.reads(404)
)
async def get_workspace(
    workspace_id: str, user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    workspace = await owned_workspace(svc, workspace_id, user)
    return {**workspace_json(workspace), "agent": await agent_status(svc, workspace)}


@router.post(
    "/workspaces/{workspace_id}/refresh",
    response_model=schemas.WorkspaceDetail,
    responses=schemas.writes(404),
)
async def refresh_workspace(
    workspace_id: str, user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Have the agent re-read its config and re-list every server, then answer like GET."""
    workspace = await owned_workspace(svc, workspace_id, user)
    try:
        client = svc.pool.client(workspace.id, workspace.agent_url, workspace.agent_token)
        await asyncio.wait_for(client.list_tools(refresh=True, timeout=REFRESH_BUDGET_S), REFRESH_BUDGET_S)
    except Exception:
        pass  # the status below says what is wrong with the agent
    svc.pool.drop_catalog(workspace.id)  # the next turn lists the tools afresh
    return {**workspace_json(workspace), "agent": await agent_status(svc, workspace)}


@router.delete("/workspaces/{workspace_id}", status_code=204, responses=schemas.writes(404))
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
