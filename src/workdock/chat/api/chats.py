"""Chats: create/list/delete, history, sending messages (queued while a turn runs), retry,
interrupt, the next turn's tool set, and the SSE stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, cast

from fastapi import Depends, Header, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from workdock.agentapi import ElicitationAnswer, ElicitationAnswered
from workdock.chat import events, notify
from workdock.chat.api import chat_cursor, schemas
from workdock.chat.api.workspaces import owned_workspace
from workdock.chat.approvals import Policy, default_policy
from workdock.chat.attachments import MAX_ATTACHMENTS, Attachment, attachment_parts, text_of
from workdock.chat.auth import current_user, services
from workdock.chat.catalog import ChatOffer, recent_tools
from workdock.chat.models import ModelError
from workdock.chat.services import Services
from workdock.chat.store.models import Chat, QueuedMessage, User
from workdock.chat.store.repo import RerunRefused
from workdock.http_errors import ApiError
from workdock.http_json import api_router
from workdock.mcp.questions import QuestionError

router = api_router(prefix="/api/v0", tags=["chats"])

PING_S = 15
MAX_ROW_ID = 2**63 - 1
PAGE_DEFAULT = 50  # chats a GET /chats page holds unless ?limit= says otherwise
PAGE_MAX = 200


class NewChat(BaseModel):
    workspace_id: str
    model: str | None = None
    title: str | None = Field(default=None, max_length=200)
    use_admin_servers: bool = True
    approval_policy: Policy | None = Field(default=None, description="default: the admin's setting")


class ChatPatch(BaseModel):
    # Only the fields sent are changed (null is refused where a field has no null); model null
    # means the server's default model; disabled_tools null turns everything back on; tool_budget
    # null goes back to the server's. A model or tool change applies from the next turn or step.
    title: str = Field(default="", min_length=1, max_length=200)
    model: str | None = None
    use_admin_servers: bool = True
    approval_policy: Policy = "auto"
    # To take back "always allow" of some tools: the list as it should be.
    always_allow: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=500)
    disabled_tools: schemas.DisabledTools | None = None
    tool_budget: schemas.ToolBudget | None = None


class NewMessage(BaseModel):
    content: str = Field(default="", description="may be empty when resources are attached")
    interrupt: bool = False
    attachments: list[Attachment] = Field(
        default_factory=list, max_length=MAX_ATTACHMENTS, description="resources read and sent with the text"
    )


class Retry(BaseModel):
    """``content``: the last user message edited (left out: run it again as it is). Unknown
    fields are refused rather than ignored."""

    model_config = ConfigDict(extra="forbid")

    content: str | None = Field(default=None, min_length=1)


async def owned_chat(svc: Services, chat_id: str, user: User) -> Chat:
    chat = await svc.store.get_chat(chat_id, user.id)
    if chat is None:  # someone else's is "not found" too
        raise ApiError(404, "no such chat")
    return chat


async def chat_json(svc: Services, chat: Chat, *, detail: bool = False) -> dict[str, Any]:
    queued: Sequence[QueuedMessage] = ()
    if detail:
        # The queue first, then the chat's row again: a message taken from the queue since is
        # then seen running (its turn starts in the same transaction). Read the other way round,
        # a turn starting between the two reads showed the chat idle with nothing queued.
        queued = await svc.store.list_queued(chat.id)
        chat = await svc.store.get_chat(chat.id) or chat
    body: dict[str, Any] = {
        "id": chat.id,
        "workspace_id": chat.workspace_id,
        "title": chat.title,
        "model": chat.model or svc.models.default,
        "status": svc.scheduler.status(chat),
        "running": svc.scheduler.is_running(chat),
        "use_admin_servers": chat.use_admin_servers,
        "approval_policy": chat.approval_policy,
        "always_allow": list(chat.always_allow or []),
        "disabled_tools": schemas.DisabledTools.model_validate(chat.disabled_tools or {}).model_dump(),
        "tool_budget": chat.tool_budget,
        "created_at": chat.created_at.isoformat(),
        "updated_at": chat.updated_at.isoformat(),
    }
    if detail:
        body["queued"] = [
            {
                "id": q.id,
                "content": q.content,
                "created_at": q.created_at.isoformat(),
                "rerun_of": q.rerun_of,
            }
            for q in queued
        ]
        body["pending_approvals"] = [
            {"tool_call_id": c.tool_call_id, "tool_name": c.tool_name}
            for c in await svc.scheduler.runner.approvals.pending(chat.id)
        ]
    return body


def _check_size(svc: Services, content: str) -> None:
    limit = svc.config.max_message_bytes
    if len(content.encode()) > limit:
        raise ApiError(
            413, "message too long", f"the limit is {limit} bytes (UTF-8); set WORKDOCK_MAX_MESSAGE_BYTES"
        )


def _check_model(svc: Services, model: str | None) -> None:
    if model is not None:
        try:
            svc.models.check(model)
        except ModelError as exc:
            raise ApiError(400, "unknown model", str(exc)) from exc


@router.get("/models", tags=["models"], response_model=schemas.Models, responses=schemas.reads())
async def list_models(_: User = Depends(current_user), svc: Services = Depends(services)) -> dict[str, Any]:
    from workdock.chat.models import HOW_TO_CONFIGURE

    return {
        "models": svc.models.names,
        "default": svc.models.default,
        "hint": None if svc.models.names else HOW_TO_CONFIGURE,
    }


@router.post(
    "/chats",
    status_code=201,
    response_model=schemas.ChatOut,
    responses={
        **schemas.created(
            "chat_id",
            ("get", "/api/v0/chats/{chat_id}"),
            ("patch", "/api/v0/chats/{chat_id}"),
            ("get", "/api/v0/chats/{chat_id}/messages"),
            ("post", "/api/v0/chats/{chat_id}/messages"),
            ("post", "/api/v0/chats/{chat_id}/interrupt"),
            ("get", "/api/v0/chats/{chat_id}/tools"),
            ("delete", "/api/v0/chats/{chat_id}"),
        ),
        **schemas.writes(404),
    },
)
async def create_chat(
    body: NewChat, user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    await owned_workspace(svc, body.workspace_id, user)
    _check_model(svc, body.model)
    chat = await svc.store.create_chat(
        user.id,
        body.workspace_id,
        title=body.title,
        model=body.model,
        use_admin_servers=body.use_admin_servers,
        approval_policy=body.approval_policy or await default_policy(svc.store),
    )
    return await chat_json(svc, chat)


@router.get("/chats", response_model=schemas.ChatList, responses=schemas.reads(400))
async def list_chats(
    limit: int = Query(default=PAGE_DEFAULT, ge=1, le=PAGE_MAX, description="chats per page"),
    cursor: str | None = Query(
        default=None, max_length=200, description="next_cursor of the page before; left out: the first page"
    ),
    user: User = Depends(current_user),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """The user's chats, most recently updated first, a page at a time. A chat updated while
    someone pages moves to the front: it shows on the first page, not again further on."""
    after = chat_cursor.decode(cursor) if cursor is not None else None
    chats, more = await svc.store.chat_page(user.id, limit, after)
    return {
        "chats": [await chat_json(svc, c) for c in chats],
        "next_cursor": chat_cursor.encode(chats[-1].updated_at, chats[-1].id) if more else None,
    }


@router.get("/chats/{chat_id}", response_model=schemas.ChatDetail, responses=schemas.reads(404))
async def get_chat(
    chat_id: str, user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    return await chat_json(svc, await owned_chat(svc, chat_id, user), detail=True)


@router.patch("/chats/{chat_id}", response_model=schemas.ChatDetail, responses=schemas.writes(404))
async def patch_chat(
    chat_id: str, body: ChatPatch, user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    await owned_chat(svc, chat_id, user)
    _check_model(svc, body.model)
    fields = body.model_dump(exclude_unset=True)
    if "tool_budget" in fields and body.tool_budget is not None:
        fields["tool_budget"] = body.tool_budget.model_dump(exclude_none=True) or None
    if fields:
        await svc.store.update_chat(chat_id, **fields)
    return await chat_json(svc, await owned_chat(svc, chat_id, user), detail=True)


@router.delete("/chats/{chat_id}", status_code=204, responses=schemas.writes(404))
async def delete_chat(
    chat_id: str, user: User = Depends(current_user), svc: Services = Depends(services)
) -> None:
    await owned_chat(svc, chat_id, user)
    await svc.scheduler.forget(chat_id)
    await svc.store.delete_chat(chat_id, user.id)
    svc.events.drop(chat_id)
    await svc.notifier.notify(notify.CHAT, chat_id)  # a replica running or watching it lets go


@router.get(
    "/chats/{chat_id}/messages",
    response_model=schemas.MessageList,
    response_model_exclude_unset=True,  # "model" and "usage" only where a message has them
    responses=schemas.reads(404),
)
async def list_messages(
    chat_id: str, user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    await owned_chat(svc, chat_id, user)
    return {"messages": [events.message_json(m) for m in await svc.store.list_messages(chat_id)]}


@router.post(
    "/chats/{chat_id}/messages",
    status_code=202,
    response_model=schemas.Sent,
    responses=schemas.writes(404, 413, 502, 504),
)
async def send_message(
    chat_id: str, body: NewMessage, user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    chat = await owned_chat(svc, chat_id, user)
    if not body.content and not body.attachments:
        raise ApiError(400, "the message is empty", "send content, attachments, or both")
    _check_size(svc, body.content)
    if not body.attachments:
        return await _submit(svc, chat, body.content, None, interrupt=body.interrupt)
    workspace = await owned_workspace(svc, chat.workspace_id, user)
    try:
        client = svc.pool.client(workspace)
    except Exception as exc:  # a workspace whose agent cannot be used: say so, never a 500
        raise ApiError(502, "the workspace agent cannot be used", f"{type(exc).__name__}: {exc}") from None
    read = await attachment_parts(svc, chat, client, body.attachments)
    parts = ([{"type": "text", "text": body.content}] if body.content else []) + read
    return await send_parts(svc, chat, parts, interrupt=body.interrupt)


async def send_parts(
    svc: Services, chat: Chat, parts: list[dict[str, Any]], *, interrupt: bool = False
) -> dict[str, Any]:
    """Queue a user message made of ``parts`` (attached resources, a prompt's messages)."""
    text = text_of(parts)
    _check_size(svc, text)
    return await _submit(svc, chat, text, parts, interrupt=interrupt, title_from=text or _first_uri(parts))


async def _submit(
    svc: Services,
    chat: Chat,
    content: str,
    parts: list[dict[str, Any]] | None,
    *,
    interrupt: bool,
    title_from: str | None = None,
) -> dict[str, Any]:
    was_running = svc.scheduler.is_running(chat)
    title = _title(title_from or content) if chat.title == "New chat" else None
    queued = await svc.scheduler.submit(chat.id, content, interrupt=interrupt, title=title, parts=parts)
    return {"queued_id": queued.id, "queued": was_running and not interrupt}


def _first_uri(parts: list[dict[str, Any]]) -> str:
    prompt = next((p for p in parts if p.get("type") == "prompt"), None)
    if prompt is not None:
        return f"/{prompt.get('name')}"
    return next((f"@{p.get('uri')}" for p in parts if p.get("type") == "resource"), "New chat")


@router.post(
    "/chats/{chat_id}/retry",
    status_code=202,
    response_model=schemas.RetryQueued,
    responses=schemas.writes(404, 409),
)
async def retry(
    chat_id: str,
    body: Retry | None = None,
    user: User = Depends(current_user),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Run the last turn again from its user message, or, with ``content``, from that message
    edited. The messages it replaces (with an edit, the user message too) stay in the history,
    marked ``superseded``; the model no longer sees them. 409 while a turn runs or messages wait."""
    await owned_chat(svc, chat_id, user)
    if body is not None and body.content is not None:
        _check_size(svc, body.content)
    try:
        queued = await svc.scheduler.retry(chat_id, body.content if body else None)
    except RerunRefused as exc:
        raise ApiError(409, exc.message, exc.detail) from exc
    return {"queued_id": queued.id, "message_id": queued.rerun_of}


@router.delete("/chats/{chat_id}/queue/{queued_id}", status_code=204, responses=schemas.writes(404))
async def unqueue(
    chat_id: str,
    queued_id: int = Path(ge=1, le=MAX_ROW_ID),  # a database integer: larger ones are no row's
    user: User = Depends(current_user),
    svc: Services = Depends(services),
) -> None:
    await owned_chat(svc, chat_id, user)
    if not await svc.store.delete_queued(chat_id, queued_id):
        raise ApiError(404, "no such queued message", "it may have started already")


@router.post("/chats/{chat_id}/interrupt", response_model=schemas.Interrupted, responses=schemas.writes(404))
async def interrupt(
    chat_id: str, user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, bool]:
    await owned_chat(svc, chat_id, user)
    return {"interrupted": await svc.scheduler.interrupt(chat_id)}


@router.post(
    "/chats/{chat_id}/elicitations/{elicitation_id}",
    response_model=ElicitationAnswered,
    responses=schemas.writes(404, 409),
)
async def answer(
    chat_id: str,
    body: ElicitationAnswer,
    elicitation_id: str = Path(
        max_length=64, description="the elicitationId of a data-tool-elicitation chunk"
    ),
    user: User = Depends(current_user),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Answer a running tool call's request for input: accept (with the form's content, checked
    against its schema), decline or cancel. 404 when the call is over, 409 once it was answered."""
    await owned_chat(svc, chat_id, user)
    try:
        action = await svc.elicitations.answer(chat_id, elicitation_id, body.action, body.content)
    except QuestionError as exc:
        raise ApiError(exc.status, exc.message, exc.detail) from exc
    return {"id": elicitation_id, "action": action}


@router.get("/chats/{chat_id}/tools", response_model=schemas.ToolSetOut, responses=schemas.reads(404))
async def next_turn_tools(
    chat_id: str, user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    """The tools the next step would get: each with its state (loaded, deferred behind find_tools,
    or turned off for this chat), and how the chat's tool budget stands."""
    chat = await owned_chat(svc, chat_id, user)
    workspace = await owned_workspace(svc, chat.workspace_id, user)
    toolset = await svc.gatherer.gather(chat, workspace)
    rows = await svc.store.list_messages(chat_id, include_superseded=False)
    offer = ChatOffer.for_chat(toolset, chat, svc.config.tool_budget, recent_tools(rows)).describe()
    users = svc.admin.users
    own = await users.sign_ins(user.id) if users is not None and chat.use_admin_servers else []
    return {**offer, "sign_ins": own}


@router.get(
    "/chats/{chat_id}/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "Server-Sent Events: Vercel AI SDK UI message stream chunks",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **schemas.reads(404),
    },
)
async def stream(
    chat_id: str,
    request: Request,
    user: User = Depends(current_user),
    svc: Services = Depends(services),
    last_event_id: str | None = Header(default=None, alias="Last-Event-ID"),
    after: str | None = Query(default=None, description="same as the Last-Event-ID header"),
) -> EventSourceResponse:
    """Server-Sent Events of the chat: the running turn from its start (or after ``Last-Event-ID``),
    then live events, on whichever replica it runs."""
    chat = await owned_chat(svc, chat_id, user)
    resume = last_event_id or after
    start, snapshot = await svc.events.start_point(chat, resume, svc.scheduler.is_running(chat))

    async def generate() -> AsyncIterator[ServerSentEvent]:
        if snapshot:  # nothing to replay: tell the newcomer where the chat stands
            now = svc.scheduler.status(chat)
            state = events.status(cast(events.ChatStatus, now) if now != "running" else "idle")
            yield ServerSentEvent(data=_dump(state), id=str(start))
        async for event in svc.events.watch(chat_id, start):
            yield ServerSentEvent(data=event.data.decode(), id=event.id)

    return EventSourceResponse(
        generate(), ping=PING_S, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


def _dump(chunk: events.Chunk) -> str:
    import orjson

    return orjson.dumps(chunk).decode()


def _title(content: str) -> str:
    line = content.strip().splitlines()[0] if content.strip() else "New chat"
    return line[:80] + ("…" if len(line) > 80 else "")
