"""MCP tool results → the wire's content blocks (spec/agent.md, call-tool)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import mcp_types as types
import orjson

from workdock import agentapi


def _drop_none(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if v is not None}


def block_to_wire(block: types.ContentBlock) -> dict[str, Any]:
    """One MCP content block as a plain JSON-ready dict in the wire's vocabulary."""
    if isinstance(block, types.TextContent):
        return {"type": "text", "text": block.text}
    if isinstance(block, types.ImageContent):
        return {"type": "image", "data": block.data, "media_type": block.mime_type}
    if isinstance(block, types.AudioContent):
        return {"type": "audio", "data": block.data, "media_type": block.mime_type}
    if isinstance(block, types.EmbeddedResource):
        resource = block.resource
        wire = {"type": "resource", "uri": str(resource.uri), "media_type": resource.mime_type}
        if isinstance(resource, types.TextResourceContents):
            wire["text"] = resource.text
        else:
            wire["data"] = resource.blob
        return _drop_none(wire)
    if isinstance(block, types.ResourceLink):
        return _drop_none(
            {
                "type": "resource_link",
                "uri": str(block.uri),
                "name": block.name,
                "description": block.description,
                "media_type": block.mime_type,
            }
        )
    # A block type from a newer protocol revision: pass what we can as text rather than drop it.
    return {"type": "text", "text": block.model_dump_json(by_alias=True, exclude_none=True)}


def result_to_dict(result: types.CallToolResult) -> dict[str, Any]:
    """The call-tool response body for ``result``."""
    return {
        "content": [block_to_wire(block) for block in result.content],
        "is_error": bool(result.is_error),
        "structured_content": result.structured_content,
    }


# ---- the pass-through path ---------------------------------------------------------------------
# A proxy passes a result on: building pydantic models of it (the SDK validates a result twice) only
# to turn them back into dicts cost more CPU than the whole round trip to the server. A result of
# the plain shape goes from the JSON-RPC dict to the wire directly, each field it passes on checked
# as the models would; anything else (input_required, a block type or field it does not know)
# returns None and takes the models' path, with their errors.


def _opt_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _raw_block_to_wire(block: Any) -> dict[str, Any] | None:
    if not isinstance(block, dict):
        return None
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return {"type": "text", "text": text} if isinstance(text, str) else None
    if kind in ("image", "audio"):
        data, mime = block.get("data"), block.get("mimeType")
        if isinstance(data, str) and isinstance(mime, str):
            return {"type": kind, "data": data, "media_type": mime}
        return None
    if kind == "resource":
        resource = block.get("resource")
        if not isinstance(resource, dict):
            return None
        uri, mime = resource.get("uri"), resource.get("mimeType")
        if not isinstance(uri, str) or not _opt_str(mime):
            return None
        wire = {"type": "resource", "uri": uri}
        if mime is not None:
            wire["media_type"] = mime
        text, blob = resource.get("text"), resource.get("blob")
        if isinstance(text, str):
            wire["text"] = text
        elif isinstance(blob, str) and text is None:
            wire["data"] = blob
        else:
            return None
        return wire
    if kind == "resource_link":
        uri, name = block.get("uri"), block.get("name")
        description, mime = block.get("description"), block.get("mimeType")
        if not (isinstance(uri, str) and isinstance(name, str) and _opt_str(description) and _opt_str(mime)):
            return None
        return _drop_none(
            {
                "type": "resource_link",
                "uri": uri,
                "name": name,
                "description": description,
                "media_type": mime,
            }
        )
    return None


def raw_result_to_dict(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """The call-tool response body for a ``tools/call`` result as it came over JSON-RPC, or None
    when it is not a plain complete result whose passed-on fields are all well formed."""
    if raw.get("resultType", "complete") != "complete":
        return None
    content, is_error, structured = raw.get("content"), raw.get("isError"), raw.get("structuredContent")
    if not isinstance(content, list) or not (is_error is None or isinstance(is_error, bool)):
        return None
    if not (structured is None or isinstance(structured, dict)):
        return None
    blocks = []
    for block in content:
        wire = _raw_block_to_wire(block)
        if wire is None:
            return None
        blocks.append(wire)
    return {"content": blocks, "is_error": bool(is_error), "structured_content": structured}


def wire_to_raw_result(wire: Mapping[str, Any]) -> dict[str, Any]:
    """A call-tool response body as an MCP ``tools/call`` result (the inverse of
    :func:`raw_result_to_dict`): what the MCP endpoint answers from :meth:`Hub.call_wire`."""
    result: dict[str, Any] = {
        "content": [_wire_block_to_raw(block) for block in wire["content"]],
        "isError": bool(wire.get("is_error")),
    }
    if wire.get("structured_content") is not None:
        result["structuredContent"] = wire["structured_content"]
    return result


def _wire_block_to_raw(block: Mapping[str, Any]) -> dict[str, Any]:
    kind = block["type"]
    if kind == "text":
        return {"type": "text", "text": block["text"]}
    if kind in ("image", "audio"):
        return {"type": kind, "data": block["data"], "mimeType": block["media_type"]}
    if kind == "resource":
        resource: dict[str, Any] = {"uri": block["uri"]}
        if block.get("media_type") is not None:
            resource["mimeType"] = block["media_type"]
        if "text" in block:
            resource["text"] = block["text"]
        else:
            resource["blob"] = block["data"]
        return {"type": "resource", "resource": resource}
    # resource_link, the only other kind the wire has
    raw = {"type": "resource_link", "uri": block["uri"], "name": block["name"]}
    if block.get("description") is not None:
        raw["description"] = block["description"]
    if block.get("media_type") is not None:
        raw["mimeType"] = block["media_type"]
    return raw


def resource_contents_to_wire(
    contents: Iterable[types.TextResourceContents | types.BlobResourceContents],
) -> list[dict[str, Any]]:
    """A read resource's contents as the wire's ``resource`` blocks."""
    return [block_to_wire(types.EmbeddedResource(type="resource", resource=item)) for item in contents]


def prompt_to_dict(name: str, server: str, result: types.GetPromptResult) -> dict[str, Any]:
    """The get-prompt response body: the prompt's messages, each one content block."""
    return {
        "name": name,
        "server_name": server,
        "description": result.description,
        "messages": [{"role": m.role, "content": block_to_wire(m.content)} for m in result.messages],
    }


def result_to_wire(result: types.CallToolResult) -> agentapi.CallToolResult:
    return agentapi.CallToolResult.model_validate(result_to_dict(result))


def error_result(message: str) -> agentapi.CallToolResult:
    """A tool result that tells the model the call failed and why."""
    return agentapi.CallToolResult(content=[agentapi.ContentBlock(type="text", text=message)], is_error=True)


# ---- structured content that repeats the text -------------------------------------------------
# MCP asks a server that returns structuredContent to send it as text too, for older clients; the
# official servers do (the text's own JSON, or {"content": <the text>}). Whoever shows or forwards a
# result sends the structured content only when the content does not already carry it.

_BLOCK_STRINGS = ("text", "data", "uri", "media_type", "name", "description")
_NOTHING = object()


def carries_structured(blocks: Iterable[Mapping[str, Any]], value: Any) -> bool:
    """Whether the wire content ``blocks`` already hold ``value`` (a result's structured content):
    a text block parses to it (or to the value of its only field), the text contains it as JSON, or
    every string and number in it already appears in the content (and it has a string)."""
    if value is None:
        return True
    blocks = list(blocks)
    texts = [str(b.get("text") or "") for b in blocks if b.get("type") == "text"]
    wrapped = next(iter(value.values())) if isinstance(value, dict) and len(value) == 1 else _NOTHING
    for text in texts:
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        if parsed in (value, wrapped):
            return True
    corpus = "\n".join(str(b.get(k)) for b in blocks for k in ("type", *_BLOCK_STRINGS) if b.get(k))
    if orjson.dumps(value).decode() in corpus:
        return True
    strings: list[str] = []
    numbers: list[str] = []
    _leaves(value, strings, numbers)
    if not strings:
        return False
    return all(s in corpus or _escaped(s) in corpus for s in strings) and all(n in corpus for n in numbers)


def _leaves(value: Any, strings: list[str], numbers: list[str]) -> None:
    if isinstance(value, str):
        strings.append(value)
    elif isinstance(value, bool) or value is None:
        return  # true/false/null say too little to look for
    elif isinstance(value, int | float):
        # 3.0 is "3" in the JavaScript that wrote most texts
        integral = isinstance(value, int) or value.is_integer()
        numbers.append(str(int(value)) if integral else repr(value))
    elif isinstance(value, dict):
        for item in value.values():
            _leaves(item, strings, numbers)
    elif isinstance(value, list):
        for item in value:
            _leaves(item, strings, numbers)


def _escaped(text: str) -> str:
    """``text`` as it appears inside a JSON string (the text blocks are often JSON themselves)."""
    return orjson.dumps(text).decode()[1:-1]


def structured_to_send(result: agentapi.CallToolResult) -> Any:
    """The result's structured content when its content does not already carry it, else ``None``."""
    if result.structured_content is None:
        return None
    blocks = [b.model_dump(exclude_none=True) for b in result.content]
    return None if carries_structured(blocks, result.structured_content) else result.structured_content
