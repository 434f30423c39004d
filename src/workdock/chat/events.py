"""Our own vocabulary: stream chunks (the Vercel AI SDK UI message stream types plus ``data-status`` and
``data-message``) and persisted message parts. Nothing from the LLM library appears here."""

from __future__ import annotations

from typing import Any, Literal

from workdock.chat.store.models import Message

Chunk = dict[str, Any]
ChatStatus = Literal["running", "idle", "error", "interrupted"]


def start(message_id: str) -> Chunk:
    return {"type": "start", "messageId": message_id}


def start_step() -> Chunk:
    return {"type": "start-step"}


def finish_step() -> Chunk:
    return {"type": "finish-step"}


def finish(reason: str = "stop") -> Chunk:
    return {"type": "finish", "messageMetadata": {"finish_reason": reason}}


def text_start(part_id: str) -> Chunk:
    return {"type": "text-start", "id": part_id}


def text_delta(part_id: str, delta: str) -> Chunk:
    return {"type": "text-delta", "id": part_id, "delta": delta}


def text_end(part_id: str) -> Chunk:
    return {"type": "text-end", "id": part_id}


def reasoning_start(part_id: str) -> Chunk:
    return {"type": "reasoning-start", "id": part_id}


def reasoning_delta(part_id: str, delta: str) -> Chunk:
    return {"type": "reasoning-delta", "id": part_id, "delta": delta}


def reasoning_end(part_id: str) -> Chunk:
    return {"type": "reasoning-end", "id": part_id}


def tool_input_start(call_id: str, tool_name: str) -> Chunk:
    return {"type": "tool-input-start", "toolCallId": call_id, "toolName": tool_name}


def tool_input_delta(call_id: str, delta: str) -> Chunk:
    return {"type": "tool-input-delta", "toolCallId": call_id, "inputTextDelta": delta}


def tool_input_available(call_id: str, tool_name: str, args: Any) -> Chunk:
    return {"type": "tool-input-available", "toolCallId": call_id, "toolName": tool_name, "input": args}


def tool_output_available(call_id: str, output: Any) -> Chunk:
    return {"type": "tool-output-available", "toolCallId": call_id, "output": output}


def tool_output_error(call_id: str, error_text: str) -> Chunk:
    return {"type": "tool-output-error", "toolCallId": call_id, "errorText": error_text}


def tool_approval_request(call_id: str) -> Chunk:
    """The call waits for the user's answer; its approval is named by the call's own id."""
    return {"type": "tool-approval-request", "approvalId": call_id, "toolCallId": call_id}


def tool_approval_response(call_id: str, approved: bool, reason: str | None = None) -> Chunk:
    """The user answered (every watcher learns that the question is settled)."""
    chunk: Chunk = {"type": "tool-approval-response", "approvalId": call_id, "approved": approved}
    if reason:
        chunk["reason"] = reason
    return chunk


def tool_output_denied(call_id: str) -> Chunk:
    return {"type": "tool-output-denied", "toolCallId": call_id}


# ---- a running tool call's card: data parts keyed by the call (a later chunk with the same id
# replaces the earlier one, as the AI SDK reconciles data parts) -------------------------------


def tool_progress(call_id: str, progress: float, total: float | None, message: str | None) -> Chunk:
    data = {"toolCallId": call_id, "progress": progress, "total": total, "message": message}
    return {"type": "data-tool-progress", "id": f"progress-{call_id}", "data": data}


def tool_output(call_id: str, text: str) -> Chunk:
    """A piece of a running command's output; pieces add up (no id: none replaces another)."""
    return {"type": "data-tool-output", "data": {"toolCallId": call_id, "text": text}}


ElicitationStatus = Literal["pending", "accept", "decline", "cancel", "expired"]


def tool_elicitation(
    call_id: str, elicitation_id: str, request: dict[str, Any], status: ElicitationStatus = "pending"
) -> Chunk:
    """A request for input on the call's card: pending (answer at POST
    /chats/{id}/elicitations/{elicitation_id}), then how it was answered, or expired."""
    data = {"toolCallId": call_id, "elicitationId": elicitation_id, "status": status, **request}
    return {"type": "data-tool-elicitation", "id": f"elicitation-{elicitation_id}", "data": data}


def error(text: str) -> Chunk:
    return {"type": "error", "errorText": text}


def abort() -> Chunk:
    return {"type": "abort"}


def status(state: ChatStatus, **extra: Any) -> Chunk:
    return {"type": "data-status", "data": {"status": state, **extra}}


def superseded(message_ids: list[int]) -> Chunk:
    """A retry replaced these stored messages: they stay in the history, the model no longer sees them."""
    return {"type": "data-superseded", "data": {"message_ids": message_ids}}


def message(row: Message) -> Chunk:
    return {"type": "data-message", "id": f"message-{row.id}", "data": message_json(row)}


def message_json(row: Message) -> dict[str, Any]:
    """A persisted message as the API shows it (spec/chat.md, Messages)."""
    body: dict[str, Any] = {
        "id": row.id,
        "role": row.role,
        "created_at": row.created_at.isoformat(),
        "parts": row.parts,
    }
    if row.model is not None:
        body["model"] = row.model
    if row.usage is not None:
        body["usage"] = row.usage
    if row.superseded:
        body["superseded"] = True
    return body


# ---- stored parts that are ours alone (text, tool calls and results mirror the model's) ----------

StopReason = Literal["user", "server"]

_INTERRUPTED_TEXT: dict[StopReason, str] = {
    "user": "Stopped by the user.",
    "server": "The server stopped during this turn.",
}


def interrupted_part(reason: StopReason) -> dict[str, Any]:
    """The mark an interrupted turn leaves at its end in the history (the model is not sent it)."""
    return {"type": "interrupted", "reason": reason, "text": _INTERRUPTED_TEXT[reason]}
