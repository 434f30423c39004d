"""A chat's MCP resources and prompts: listings for the composer's ``@`` and ``/`` menus, and
running a prompt as the user's next message (attachments ride on ``POST …/messages``)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends
from pydantic import BaseModel, ConfigDict, Field

from workdock.agentapi import AgentClient
from workdock.chat.api import schemas
from workdock.chat.api.chats import owned_chat, send_parts
from workdock.chat.api.workspaces import owned_workspace
from workdock.chat.attachments import RunPrompt, list_prompts, list_resources, prompt_parts
from workdock.chat.auth import current_user, services
from workdock.chat.services import Services
from workdock.chat.store.models import Chat, User
from workdock.http_errors import ApiError
from workdock.http_json import api_router

router = api_router(prefix="/api/v0", tags=["chats"])


class Listed(BaseModel):
    model_config = ConfigDict(extra="allow")

    source: str
    server_name: str


class Failure(BaseModel):
    source: str
    server: str | None = None
    error: str


class ResourcesOut(BaseModel):
    resources: list[Listed] = Field(default_factory=list)
    resource_templates: list[Listed] = Field(default_factory=list)
    failures: list[Failure] = Field(default_factory=list)


class PromptsOut(BaseModel):
    prompts: list[Listed] = Field(default_factory=list)
    failures: list[Failure] = Field(default_factory=list)


async def chat_and_client(svc: Services, chat_id: str, user: User) -> tuple[Chat, AgentClient]:
    chat = await owned_chat(svc, chat_id, user)
    workspace = await owned_workspace(svc, chat.workspace_id, user)
    try:
        return chat, svc.pool.client(workspace)
    except Exception as exc:  # a workspace whose agent cannot be used: say so, never a 500
        raise ApiError(502, "the workspace agent cannot be used", f"{type(exc).__name__}: {exc}") from None


@router.get("/chats/{chat_id}/resources", response_model=ResourcesOut, responses=schemas.reads(404, 502))
async def chat_resources(
    chat_id: str, user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Resources (and templates) a message can attach: the workspace's, then the admin servers'."""
    chat, client = await chat_and_client(svc, chat_id, user)
    return await list_resources(svc, chat, client)


@router.get("/chats/{chat_id}/prompts", response_model=PromptsOut, responses=schemas.reads(404, 502))
async def chat_prompts(
    chat_id: str, user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Prompts to run as slash commands, with their arguments: the workspace's, then the admin servers'."""
    chat, client = await chat_and_client(svc, chat_id, user)
    return await list_prompts(svc, chat, client)


@router.post(
    "/chats/{chat_id}/prompt",
    status_code=202,
    response_model=schemas.Sent,
    responses=schemas.writes(404, 413, 502, 504),
)
async def run_prompt(
    chat_id: str, body: RunPrompt, user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Get the prompt with its arguments; its messages become the user's next message."""
    chat, client = await chat_and_client(svc, chat_id, user)
    parts = await prompt_parts(svc, chat, client, body)
    return await send_parts(svc, chat, parts, interrupt=body.interrupt)
