"""MCP tool results → the wire's content blocks (spec/agent.md, call-tool)."""

from __future__ import annotations

from typing import Any

import mcp_types as types

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


def result_to_wire(result: types.CallToolResult) -> agentapi.CallToolResult:
    return agentapi.CallToolResult.model_validate(result_to_dict(result))


def error_result(message: str) -> agentapi.CallToolResult:
    """A tool result that tells the model the call failed and why."""
    return agentapi.CallToolResult(content=[agentapi.ContentBlock(type="text", text=message)], is_error=True)
