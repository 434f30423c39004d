"""Approving a workspace's project servers and giving their inputs, from the web UI: handed on to
the workspace's agent (``POST /api/v0/mcp/trust`` and ``/inputs`` there), which keeps the approval
and holds the value in memory. A value is never stored or logged here."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Depends

from workdock.agentapi import AgentError, InputRequest, InputResult, TrustRequest, TrustResult
from workdock.chat.api import schemas
from workdock.chat.api.workspaces import agent_status, owned_workspace, workspace_json
from workdock.chat.auth import current_user, services
from workdock.chat.services import Services
from workdock.chat.store.models import User
from workdock.http_errors import ApiError
from workdock.http_json import api_router

router = api_router(prefix="/api/v0", tags=["workspaces"])

AGENT_BUDGET_S = 15.0


def passed_on(exc: AgentError) -> ApiError:
    """The agent's 4xx as ours (what the user asked for is wrong); an agent that cannot be reached
    (or fails) is a 409: the workspace is not in a state to take it now, and says why."""
    if 400 <= exc.status < 500 and exc.status not in (401, 429):
        return ApiError(exc.status, exc.message, exc.detail)
    return ApiError(409, f"the workspace's agent: {exc.message}", exc.detail)


@router.post(
    "/workspaces/{workspace_id}/trust",
    response_model=schemas.WorkspaceDetail,
    responses=schemas.writes(404, 409),
)
async def trust_servers(
    workspace_id: str,
    body: TrustRequest,
    user: User = Depends(current_user),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Approve project servers waiting for it (by name, all from one file, or all): they start."""
    workspace = await owned_workspace(svc, workspace_id, user)
    try:
        client = svc.pool.client(workspace)
        result: TrustResult = await asyncio.wait_for(
            client.trust(body.servers, file=body.file, all=body.all), AGENT_BUDGET_S
        )
    except AgentError as exc:
        raise passed_on(exc) from None
    except TimeoutError:
        raise ApiError(409, "the workspace's agent did not answer in time") from None
    if result.approved:
        svc.pool.drop_catalog(workspace.id)
    return {**workspace_json(workspace), "agent": await agent_status(svc, workspace)}


@router.post(
    "/workspaces/{workspace_id}/inputs",
    response_model=schemas.WorkspaceDetail,
    responses=schemas.writes(404, 409),
)
async def give_input(
    workspace_id: str,
    body: InputRequest,
    user: User = Depends(current_user),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Give a server's ``${input:ID}`` value to the agent (it keeps it in memory only)."""
    workspace = await owned_workspace(svc, workspace_id, user)
    try:
        client = svc.pool.client(workspace)
        _: InputResult = await asyncio.wait_for(client.give_input(body.id, body.value), AGENT_BUDGET_S)
    except AgentError as exc:
        raise passed_on(exc) from None
    except TimeoutError:
        raise ApiError(409, "the workspace's agent did not answer in time") from None
    svc.pool.drop_catalog(workspace.id)
    return {**workspace_json(workspace), "agent": await agent_status(svc, workspace)}
