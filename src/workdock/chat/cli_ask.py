"""``workdock chat`` asks a tool's request for input at the prompt: accept, decline or cancel, then
each field of the requested schema (type, required mark, default, choices), read as its type."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.console import Console
from rich.text import Text

Answer = tuple[str, dict[str, Any] | None]
_ACTIONS = {"": "accept", "a": "accept", "accept": "accept", "d": "decline", "decline": "decline"}
_ACTIONS |= {"c": "cancel", "cancel": "cancel"}
_TRUE = {"y", "yes", "true", "1"}
_FALSE = {"n", "no", "false", "0"}
MAX_TRIES = 3


async def _line(prompt: str) -> str | None:
    try:
        return (await asyncio.to_thread(input, prompt)).strip()
    except EOFError:
        return None


def _choices(prop: dict[str, Any]) -> list[Any] | None:
    options = prop.get("oneOf") or prop.get("anyOf")
    if isinstance(options, list):
        return [o.get("const") for o in options if isinstance(o, dict)]
    values = prop.get("enum")
    return list(values) if isinstance(values, list) else None


def _convert(prop: dict[str, Any], text: str) -> Any:
    """The typed value of what was typed; ValueError says what is wrong."""
    kind = prop.get("type")
    if kind == "array":
        allowed = _choices(prop.get("items") or {})
        values = [v.strip() for v in text.split(",") if v.strip()]
        if allowed is not None and (bad := [v for v in values if v not in allowed]):
            raise ValueError(f"not among {allowed}: {bad}")
        return values
    allowed = _choices(prop)
    if allowed is not None and text not in [str(a) for a in allowed]:
        raise ValueError(f"one of {allowed}")
    if kind == "boolean":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError("yes or no")
    if kind == "integer":
        return int(text)
    if kind == "number":
        return float(text)
    return text


async def ask_at_prompt(console: Console, tool: str, request: dict[str, Any]) -> Answer | None:
    """The user's answer, or None when the input ended (the caller declines then)."""
    # Text, not markup: the message and the schema come from the MCP server.
    console.print(Text(f"? {tool} asks: ", style="bold yellow") + Text(str(request.get("message", ""))))
    if request.get("mode") == "url":
        console.print(Text(f"  open: {request.get('url')}"))
    reply = await _line("  [a]ccept, [d]ecline or [c]ancel? ")
    if reply is None:
        return None
    action = _ACTIONS.get(reply.lower(), "accept" if reply.lower().startswith("a") else "cancel")
    if action != "accept" or request.get("mode") == "url":
        return action, None
    schema = request.get("requested_schema") or {}
    required = set(schema.get("required") or [])
    content: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        hint = [str(prop.get("type", "string"))]
        if (choices := _choices(prop) or _choices(prop.get("items") or {})) is not None:
            hint.append("/".join(str(c) for c in choices))
        if "default" in prop:
            hint.append(f"default {prop['default']}")
        mark = "*" if name in required else ""
        for _ in range(MAX_TRIES):
            text = await _line(f"  {prop.get('title') or name}{mark} ({', '.join(hint)}): ")
            if text is None:
                return None
            if not text:
                if "default" in prop:
                    content[name] = prop["default"]
                    break
                if name not in required:
                    break
                console.print(Text("  required", style="red"))
                continue
            try:
                content[name] = _convert(prop, text)
                break
            except ValueError as exc:
                console.print(Text(f"  {exc or 'not valid'}", style="red"))
    return "accept", content
