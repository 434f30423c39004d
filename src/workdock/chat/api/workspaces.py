"""A user's workspaces: a linked agent (it dials in with a token shown once) or a directly
reachable one (agent URL + token, never shown again)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

from fastapi import Depends, Request
from pydantic import BaseModel, Field, HttpUrl, model_validator

from workdock.agent.token import TOKEN_ENV
from workdock.agentapi import AgentError
from workdock.chat import notify
from workdock.chat.api import schemas
from workdock.chat.auth import current_user, services
from workdock.chat.services import Services
from workdock.chat.status_cache import Seen
from workdock.chat.store.models import User, Workspace, utcnow
from workdock.http_errors import ApiError
from workdock.http_json import api_router
from workdock.link.session import CLOSE_REVOKED

logger = logging.getLogger(__name__)
router = api_router(prefix="/api/v0", tags=["workspaces"])

STATUS_BUDGET_S = 2.0
REFRESH_BUDGET_S = 35.0  # the agent waits for reconnects up to its own connect budget (30 s by default)


class NewWorkspace(BaseModel):
    """``{"name"}`` for an agent that dials in (linked); with ``agent_url`` and ``agent_token``
    for one the server can reach (direct)."""

    name: str = Field(min_length=1, max_length=200)
    agent_url: HttpUrl | None = None
    # Sent on as an HTTP header: visible ASCII only (a header cannot carry anything else).
    agent_token: str | None = Field(default=None, min_length=1, max_length=4096, pattern=r"^[\x21-\x7e]+$")
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


def _unreachable(link: dict[str, Any] | None, error: str) -> dict[str, Any]:
    return {
        **(link or _direct_link_fields(False, error)),
        "reachable": False,
        "error": error,
        "servers": [],
        "config_files": [],
    }


async def agent_status(svc: Services, workspace: Workspace) -> dict[str, Any]:
    """The agent's state as of now (it also refreshes the cached one that lists show)."""
    if svc.pool.unavailable(workspace) is not None:
        return _shown(svc, workspace, None)
    return _shown(svc, workspace, await svc.statuses.fresh(workspace.id, partial(_ask_agent, svc, workspace)))


async def agent_statuses(svc: Services, workspaces: Sequence[Workspace]) -> list[dict[str, Any]]:
    """Every agent's state at once: fresh where the agent answers within a short wait, else the
    last one seen with its age (status_cache.py). A linked agent's link is always as of now."""
    asked = [w for w in workspaces if svc.pool.unavailable(w) is None]
    seen = dict(
        zip(
            (w.id for w in asked),
            await svc.statuses.many([(w.id, partial(_ask_agent, svc, w)) for w in asked]),
            strict=True,
        )
    )
    return [_shown(svc, w, seen.get(w.id)) for w in workspaces]


def _shown(svc: Services, workspace: Workspace, seen: Seen | None) -> dict[str, Any]:
    """A status as the API shows it. A linked agent's link is as of now: one that is not
    connected is known to be unreachable without asking it (``seen`` is None then)."""
    link = svc.pool.links.status(workspace.id, workspace.created_at) if workspace.linked else None
    away = svc.pool.unavailable(workspace)
    if seen is None or away is not None:
        why = away or "the agent's status could not be checked"
        return {**_unreachable(link, why), "checked_at": utcnow().isoformat(), "age_s": 0.0}
    return {**seen.shown(), **(link or {})}


async def _ask_agent(svc: Services, workspace: Workspace) -> dict[str, Any]:
    """The agent's state; whatever goes wrong is this workspace's error, never the whole answer's."""
    link = svc.pool.links.status(workspace.id, workspace.created_at) if workspace.linked else None
    try:
        client = svc.pool.client(workspace)
        listing = await asyncio.wait_for(client.servers(timeout=STATUS_BUDGET_S), STATUS_BUDGET_S)
    except (AgentError, TimeoutError) as exc:
        return _unreachable(link, str(exc) or "no answer in time")
    except Exception as exc:
        logger.warning("workspace %s: agent status failed: %r", workspace.id, exc)
        return _unreachable(link, f"cannot reach the agent: {type(exc).__name__}: {exc}")
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
                "config_file": s.config_file,
                "launch": s.launch,
                "inputs": [i.model_dump() for i in s.inputs],
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
    response_model=schemas.WorkspaceCreated,
    response_model_exclude_none=False,
    responses={
        **schemas.created(
            "workspace_id",
            ("get", "/api/v0/workspaces/{workspace_id}"),
            ("post", "/api/v0/workspaces/{workspace_id}/refresh"),
            ("post", "/api/v0/workspaces/{workspace_id}/agent-token"),
            ("delete", "/api/v0/workspaces/{workspace_id}"),
        ),
        **schemas.writes(),
    },
)
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


@router.post(
    "/workspaces/{workspace_id}/agent-token",
    response_model=schemas.WorkspaceCreated,
    responses=schemas.writes(404, 409),
)
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
    await svc.notifier.notify(notify.LINKS, workspace.id)  # the replica holding its link closes it
    svc.pool.drop_catalog(workspace.id)
    svc.statuses.forget(workspace.id)
    return {**workspace_json(workspace), "agent_token": token, "connect": connect_block(svc, request, token)}


@router.get("/workspaces", response_model=schemas.WorkspaceList, responses=schemas.reads())
async def list_workspaces(
    user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    workspaces = await svc.store.list_workspaces(user.id)
    statuses = await agent_statuses(svc, workspaces)
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
        client = svc.pool.client(workspace)
        await asyncio.wait_for(client.list_tools(refresh=True, timeout=REFRESH_BUDGET_S), REFRESH_BUDGET_S)
    except Exception:
        pass  # the status below says what is wrong with the agent
    svc.pool.drop_catalog(workspace.id)  # the next turn lists the tools afresh
    svc.statuses.forget(workspace.id)
    return {**workspace_json(workspace), "agent": await agent_status(svc, workspace)}


@router.delete("/workspaces/{workspace_id}", status_code=204, responses=schemas.writes(404))
async def delete_workspace(
    workspace_id: str, user: User = Depends(current_user), svc: Services = Depends(services)
) -> None:
    await owned_workspace(svc, workspace_id, user)
    gone = await svc.store.workspace_chat_ids(workspace_id)
    for chat_id in gone:
        await svc.scheduler.forget(chat_id)
        svc.events.drop(chat_id)
    await svc.store.delete_workspace(workspace_id, user.id)
    svc.gatherer.forget(workspace_id)
    svc.statuses.forget(workspace_id)
    await svc.pool.links.disconnect(workspace_id, CLOSE_REVOKED, "the workspace was deleted")
    svc.pool.links.forget(workspace_id)
    # The other replicas: the one holding its link closes it, those running its chats stop them.
    await svc.notifier.notify(notify.LINKS, workspace_id)
    for chat_id in gone:
        await svc.notifier.notify(notify.CHAT, chat_id)
