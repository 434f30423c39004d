"""Approving tool calls: the answer to a pending call, and the admin's default policy for new chats."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from workdock.chat.api import schemas
from workdock.chat.api.chats import owned_chat
from workdock.chat.approvals import DEFAULT_POLICY_SETTING, Policy, default_policy
from workdock.chat.auth import admin_user, current_user, services
from workdock.chat.services import Services
from workdock.chat.store.approvals import NotPending
from workdock.chat.store.models import User
from workdock.http_errors import ApiError
from workdock.http_json import api_router

router = api_router(prefix="/api/v0", tags=["approvals"])

MAX_REASON = 2000


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: bool
    reason: str | None = Field(
        default=None, max_length=MAX_REASON, description="a denial's why, for the model"
    )
    always: bool = Field(
        default=False, description="with an approval: allow this tool in this chat from now on"
    )


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_approval_policy: Policy = Field(description="the approval policy of chats created without one")


@router.post(
    "/chats/{chat_id}/approvals/{tool_call_id}",
    response_model=schemas.Answered,
    responses=schemas.writes(404, 409),
)
async def answer(
    chat_id: str,
    body: Answer,
    tool_call_id: str = Path(max_length=200),
    user: User = Depends(current_user),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Approve or deny a tool call that waits: a denial gives the model an error result with the
    reason. 404 when the chat has no such pending call, 409 when it was answered already."""
    await owned_chat(svc, chat_id, user)
    try:
        answered = await svc.scheduler.answer(
            chat_id, tool_call_id, approve=body.approve, reason=body.reason, always=body.always
        )
    except NotPending as exc:
        raise ApiError(exc.status, exc.message, exc.detail) from exc
    return {"answered": answered}


@router.get("/settings", tags=["settings"], response_model=schemas.SettingsOut, responses=schemas.reads(403))
async def get_settings(_: User = Depends(admin_user), svc: Services = Depends(services)) -> dict[str, Any]:
    return {"default_approval_policy": await default_policy(svc.store)}


@router.patch(
    "/settings", tags=["settings"], response_model=schemas.SettingsOut, responses=schemas.writes(403)
)
async def patch_settings(
    body: Settings, _: User = Depends(admin_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    await svc.store.set_setting(DEFAULT_POLICY_SETTING, body.default_approval_policy)
    return {"default_approval_policy": body.default_approval_policy}
