"""Tool results → what the model is sent; persisted history → pydantic-ai messages.

The database keeps only our own parts (chat/events.py); this is the one place they meet
pydantic-ai's message types.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic_ai.messages import (
    BinaryContent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from workdock.agentapi import CallToolResult, ContentBlock
from workdock.chat.store.models import Message
from workdock.mcp.content import carries_structured, structured_to_send

TEXT_CAP = 64 * 1024
_MODEL_MEDIA = ("image/",)  # file kinds we hand to the model as files; pydantic-ai notes what it cannot send


def cap_text(text: str, cap: int = TEXT_CAP) -> str:
    raw = text.encode()
    if len(raw) <= cap:
        return text
    kept = raw[:cap].decode(errors="ignore")
    return f"{kept}\n[output cut: {len(raw) - len(kept.encode())} of {len(raw)} bytes not shown]"


def _block_text(block: ContentBlock) -> str | None:
    if block.type == "text":
        return block.text or ""
    if block.type == "resource":
        if block.text is not None:
            return f"[resource {block.uri}]\n{block.text}"
        return f"[resource {block.uri} ({block.media_type or 'binary'}), not shown]"
    if block.type == "resource_link":
        described = f": {block.description}" if block.description else ""
        return f"[resource link {block.name or ''} {block.uri}{described}]"
    if block.type == "audio":
        return f"[audio ({block.media_type}), not shown]"
    return None


def _content_text(blocks: Sequence[ContentBlock]) -> str:
    return "\n".join(t for t in (_block_text(b) for b in blocks) if t is not None)


def result_text(result: CallToolResult) -> str:
    """All of a result's text in one capped string, with its structured content as JSON when the
    text does not already carry it (the error text streamed for a failed call)."""
    text = _content_text(result.content)
    if (structured := structured_to_send(result)) is not None:
        text = f"{text}\n{orjson.dumps(structured).decode()}" if text else orjson.dumps(structured).decode()
    return cap_text(text)


def for_storage(result: CallToolResult) -> tuple[list[dict[str, Any]], Any]:
    """Content blocks as persisted and streamed (text capped once, files kept as they came), and the
    structured content to keep beside them: ``None`` when the text already carries it."""
    blocks: list[dict[str, Any]] = [{"type": "text", "text": cap_text(_content_text(result.content))}]
    for block in result.content:
        if block.type == "image" and block.data:
            blocks.append(block.model_dump(exclude_none=True))
    return blocks, structured_to_send(result)


def for_model(content: Sequence[dict[str, Any]], structured: Any = None) -> str | list[Any]:
    """A stored result → a ToolReturnPart's content: a string, or text plus images. The structured
    content is added as JSON unless the text carries it (results stored before it was kept only
    when needed carry it in their text), within the same 64 KiB as the text."""
    text = "\n".join(t for t in (b.get("text") for b in content if b.get("type") == "text") if t)
    if structured is not None and not carries_structured(content, structured):
        # The stored text is already capped; the JSON gets what is left of the same budget.
        budget = max(TEXT_CAP - len(text.encode()), 0)
        data = cap_text(orjson.dumps(structured).decode(), budget)
        text = f"{text}\n{data}" if text else data
    files: list[Any] = []
    for block in content:
        if block.get("type") != "text" and str(block.get("media_type", "")).startswith(_MODEL_MEDIA):
            try:
                files.append(
                    BinaryContent(data=base64.b64decode(block["data"]), media_type=block["media_type"])
                )
            except (KeyError, binascii.Error, ValueError):
                text += "\n[an image that could not be decoded was left out]"
    if not files:
        return text
    return [text, *files] if text else files  # an empty text would reach the model as an empty item


def user_content(parts: Sequence[dict[str, Any]]) -> str | list[Any]:
    """A user message's parts for the model: its text, then each attached resource (from a
    resource part, the same way a tool result is given: text capped, images as images)."""
    text = "\n".join(p.get("text", "") for p in parts if p.get("type") == "text")
    resources = [p for p in parts if p.get("type") == "resource"]
    if not resources:
        return text
    items: list[Any] = [text] if text else []
    for part in resources:
        content = for_model(part.get("content") or [])
        header = f"[attached resource {part.get('uri')} from server {part.get('server')}]"
        if isinstance(content, str):
            items.append(f"{header}\n{content}")
        else:
            items.extend([header, *content])
    return items


def to_model_messages(rows: Sequence[Message]) -> list[ModelMessage]:
    """Persisted history → the model's message list (all at once: ``HistoryBuilder``)."""
    builder = HistoryBuilder()
    builder.add(rows)
    return builder.messages()


class HistoryBuilder:
    """Persisted history → the model's message list, as rows are appended (chat/history_cache.py
    keeps one per chat between turns, so a turn converts only its new rows).

    A tool call without a stored result (its turn was interrupted) gets a result saying so,
    because providers refuse a history with an unanswered call: in the middle of the history once
    a later message shows the turn is over, and at its end in ``messages()`` only (the results may
    still be appended).
    """

    def __init__(self) -> None:
        self._messages: list[ModelMessage] = []
        self._open_calls: dict[str, str] = {}

    def messages(self) -> list[ModelMessage]:
        """The history so far, a new list (the caller may append to it)."""
        if self._open_calls:
            return [*self._messages, _interrupted(self._open_calls)]
        return list(self._messages)

    def _close_open_calls(self) -> None:
        if self._open_calls:
            self._messages.append(_interrupted(self._open_calls))
            self._open_calls.clear()

    def add(self, rows: Sequence[Message]) -> list[ModelMessage]:
        """Convert ``rows``, the next ones of the history; the messages that adds."""
        messages, open_calls = self._messages, self._open_calls
        before = len(messages)
        for row in rows:
            if row.role == "user":
                self._close_open_calls()
                messages.append(ModelRequest(parts=[UserPromptPart(user_content(row.parts))]))
            elif row.role == "assistant":
                self._close_open_calls()
                parts: list[Any] = []
                for part in row.parts:
                    if part.get("type") == "text" and part.get("text"):
                        parts.append(TextPart(part["text"]))
                    elif part.get("type") == "tool-call":
                        parts.append(
                            ToolCallPart(
                                part["tool_name"], part.get("args") or {}, tool_call_id=part["tool_call_id"]
                            )
                        )
                        open_calls[part["tool_call_id"]] = part["tool_name"]
                if parts:
                    messages.append(ModelResponse(parts=parts, model_name=row.model))
            elif row.role == "tool":
                returns = []
                for part in row.parts:
                    if part.get("type") != "tool-result" or part.get("tool_call_id") not in open_calls:
                        continue
                    open_calls.pop(part["tool_call_id"])
                    returns.append(
                        ToolReturnPart(
                            tool_name=part["tool_name"],
                            content=for_model(part.get("content") or [], part.get("structured_content")),
                            tool_call_id=part["tool_call_id"],
                            outcome="failed" if part.get("is_error") else "success",
                        )
                    )
                if returns:
                    messages.append(ModelRequest(parts=returns))
        return messages[before:]


def _interrupted(open_calls: dict[str, str]) -> ModelRequest:
    return ModelRequest(
        parts=[
            ToolReturnPart(
                tool_name=name,
                content="the turn was interrupted before this call finished",
                tool_call_id=call_id,
                outcome="interrupted",
            )
            for call_id, name in open_calls.items()
        ]
    )
