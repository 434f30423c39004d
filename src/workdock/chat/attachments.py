"""A chat's MCP resources and prompts: listed for the UI, read into a user message's parts.

Both come from the chat's workspace (its agent) and, unless the chat opts out, the admin servers
(the chat server's own hub). An attached resource is read when the message is sent and stored
with it as a ``resource`` part, so the model sees what the user saw; a prompt's messages become
the parts of one user message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from workdock.agentapi import AgentClient, AgentError
from workdock.chat.convert import TEXT_CAP, cap_text
from workdock.chat.services import Services
from workdock.chat.store.models import Chat
from workdock.http_errors import ApiError
from workdock.mcp.content import block_to_wire, resource_contents_to_wire
from workdock.mcp.hub import HubError

LIST_BUDGET_S = 5.0
MAX_ATTACHMENTS = 10
# An image attachment is kept (and shown to the model) up to this much base64; bigger files and
# other binaries are named, not stored.
MAX_KEPT_FILE = 16 * TEXT_CAP

Origin = Literal["workspace", "admin"]


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uri: str = Field(min_length=1, max_length=8192)
    server: str | None = Field(default=None, min_length=1, max_length=64)
    source: Origin = "workspace"


class RunPrompt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    arguments: dict[str, str] = Field(default_factory=dict, max_length=64)
    source: Origin = "workspace"
    interrupt: bool = False


def _admin_on(chat: Chat) -> bool:
    return bool(chat.use_admin_servers)


def _failure(source: Origin, exc: Exception) -> dict[str, Any]:
    why = str(exc) if isinstance(exc, AgentError) else f"no answer within {LIST_BUDGET_S:g} s"
    return {"source": source, "server": None, "error": f"workspace agent: {why}"}


async def list_resources(svc: Services, chat: Chat, client: AgentClient) -> dict[str, Any]:
    """The workspace's resources and templates, then the admin servers'; a failing agent is reported."""
    resources: list[dict[str, Any]] = []
    templates: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    try:
        listing, found = await asyncio.wait_for(
            asyncio.gather(
                client.list_resources(timeout=LIST_BUDGET_S),
                client.list_resource_templates(timeout=LIST_BUDGET_S),
            ),
            LIST_BUDGET_S,
        )
        assert listing is not None and found is not None  # no ETag sent: never a 304
        resources += [{"source": "workspace", **r.model_dump(mode="json")} for r in listing.resources]
        templates += [{"source": "workspace", **t.model_dump(mode="json")} for t in found.resource_templates]
    except (AgentError, TimeoutError) as exc:
        failures.append(_failure("workspace", exc))
    if _admin_on(chat):
        catalog = svc.admin.hub.catalog
        for item in catalog.resources:
            r = item.resource
            resources.append(
                {
                    "source": "admin",
                    "id": item.id,
                    "server_name": item.server,
                    "uri": r.uri,
                    "name": r.name,
                    "title": r.title,
                    "description": r.description,
                    "mime_type": r.mime_type,
                    "size": r.size,
                }
            )
        for template in catalog.templates:
            t = template.template
            templates.append(
                {
                    "source": "admin",
                    "server_name": template.server,
                    "uri_template": t.uri_template,
                    "name": t.name,
                    "title": t.title,
                    "description": t.description,
                    "mime_type": t.mime_type,
                }
            )
    return {"resources": resources, "resource_templates": templates, "failures": failures}


async def list_prompts(svc: Services, chat: Chat, client: AgentClient) -> dict[str, Any]:
    prompts: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    try:
        listing = await asyncio.wait_for(client.list_prompts(timeout=LIST_BUDGET_S), LIST_BUDGET_S)
        assert listing is not None
        prompts += [{"source": "workspace", **p.model_dump(mode="json")} for p in listing.prompts]
    except (AgentError, TimeoutError) as exc:
        failures.append(_failure("workspace", exc))
    if _admin_on(chat):
        for item in svc.admin.hub.catalog.prompts:
            p = item.prompt
            prompts.append(
                {
                    "source": "admin",
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
            )
    return {"prompts": prompts, "failures": failures}


# ---- into a message's parts -----------------------------------------------------------------------


def stored_content(blocks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A resource's contents as stored: its text in one block capped like a tool result's, images
    kept up to a size, other binaries named."""
    texts: list[str] = []
    files: list[dict[str, Any]] = []
    for block in blocks:
        if block.get("text") is not None:
            texts.append(str(block["text"]))
            continue
        data = str(block.get("data") or "")
        media = str(block.get("media_type") or "application/octet-stream")
        if media.startswith("image/") and len(data) <= MAX_KEPT_FILE:
            files.append({"type": "image", "data": data, "media_type": media})
        else:
            texts.append(f"[{media} content of {len(data) * 3 // 4} bytes, not shown]")
    return ([{"type": "text", "text": cap_text("\n".join(texts))}] if texts else []) + files


def resource_part(source: Origin, server: str, uri: str, blocks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "resource",
        "source": source,
        "server": server,
        "uri": uri,
        "content": stored_content(blocks),
    }


def _agent_error(what: str, exc: AgentError) -> ApiError:
    # The agent's 400/404 are the caller's mistake; everything else is the agent's or its server's.
    if exc.status in (400, 404):
        return ApiError(exc.status, f"{what}: {exc.message}", exc.detail)
    if exc.status == 504:
        return ApiError(504, f"{what}: {exc.message}", exc.detail)
    return ApiError(502, f"{what}: {exc.message}", exc.detail)


async def attachment_parts(
    svc: Services, chat: Chat, client: AgentClient, attachments: Sequence[Attachment]
) -> list[dict[str, Any]]:
    """Read every attachment (concurrently) into a ``resource`` part; the first failure is the answer."""
    if len(attachments) > MAX_ATTACHMENTS:
        raise ApiError(400, f"at most {MAX_ATTACHMENTS} attachments a message")

    async def read(item: Attachment) -> dict[str, Any]:
        what = f"reading {item.uri!r}"
        if item.source == "admin":
            if not _admin_on(chat):
                raise ApiError(400, f"{what}: this chat does not use the admin servers")
            try:
                server, result = await svc.admin.hub.read_resource(
                    item.uri, item.server, svc.admin.call_timeout
                )
            except HubError as exc:
                raise ApiError(exc.status, f"{what}: {exc.message}") from None
            return resource_part("admin", server, item.uri, resource_contents_to_wire(result.contents))
        try:
            read = await client.read_resource(item.uri, server=item.server)
        except AgentError as exc:
            raise _agent_error(what, exc) from None
        blocks = [b.model_dump(exclude_none=True) for b in read.contents]
        return resource_part("workspace", read.server_name, item.uri, blocks)

    return list(await asyncio.gather(*(read(a) for a in attachments)))


async def prompt_parts(
    svc: Services, chat: Chat, client: AgentClient, run: RunPrompt
) -> list[dict[str, Any]]:
    """A prompt's messages as one user message's parts, after a ``prompt`` part that names it."""
    what = f"prompt {run.name!r}"
    if run.source == "admin":
        if not _admin_on(chat):
            raise ApiError(400, f"{what}: this chat does not use the admin servers")
        try:
            prompt, result = await svc.admin.hub.get_prompt(run.name, run.arguments, svc.admin.call_timeout)
        except HubError as exc:
            raise ApiError(exc.status, f"{what}: {exc.message}") from None
        server = prompt.server
        messages = [(m.role, block_to_wire(m.content)) for m in result.messages]
    else:
        try:
            got = await client.get_prompt(run.name, run.arguments)
        except AgentError as exc:
            raise _agent_error(what, exc) from None
        server = got.server_name
        messages = [(m.role, m.content.model_dump(exclude_none=True)) for m in got.messages]
    parts: list[dict[str, Any]] = [
        {
            "type": "prompt",
            "source": run.source,
            "server": server,
            "name": run.name,
            "arguments": run.arguments,
        }
    ]
    for _role, block in messages:
        if block.get("type") == "text":
            parts.append({"type": "text", "text": cap_text(str(block.get("text") or ""))})
        elif block.get("type") == "resource":
            parts.append(resource_part(run.source, server, str(block.get("uri") or ""), [block]))
        elif block.get("type") in ("image", "audio"):
            parts.append(resource_part(run.source, server, f"prompt:{run.name}", [block]))
        else:  # a link: named for the model, not read
            parts.append({"type": "text", "text": f"[{block.get('name') or ''} {block.get('uri')}]"})
    if len(parts) == 1:
        raise ApiError(502, f"{what}: the server sent no messages")
    return parts


def text_of(parts: Sequence[dict[str, Any]]) -> str:
    """The plain text of a message's parts (a queued entry's ``content``, a chat's title)."""
    return "\n".join(str(p.get("text") or "") for p in parts if p.get("type") == "text").strip()


__all__ = [
    "Attachment",
    "RunPrompt",
    "attachment_parts",
    "list_prompts",
    "list_resources",
    "prompt_parts",
    "text_of",
]
