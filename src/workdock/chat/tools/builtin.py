"""Built-in workspace tools, carried out by the workspace agent's file and exec endpoints.

Their names are reserved: no MCP tool can take them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from workdock.agentapi import AgentClient, AgentError, CallToolResult
from workdock.chat.tools.base import Gathered, OfferedTool, error_result, text_result

_PATH = {"type": "string", "description": "Path relative to the workspace directory, or absolute."}

SCHEMAS: dict[str, tuple[str, dict[str, Any]]] = {
    "read_file": (
        "Read a text file of the workspace. Large files come in line ranges: pass offset/limit to page.",
        {"type": "object", "properties": {
            "path": _PATH,
            "offset": {"type": "integer", "minimum": 0, "description": "Lines to skip from the start."},
            "limit": {"type": "integer", "minimum": 1, "description": "At most this many lines."}},
         "required": ["path"]}),
    "write_file": (
        "Create or replace a file of the workspace with the given content (parent directories are made).",
        {"type": "object", "properties": {"path": _PATH, "content": {"type": "string"}},
         "required": ["path", "content"]}),
    "edit_files": (
        "Edit files by exact search and replace. In each file every `old` must match exactly once unless "
        "replace_all is set; a file's edits apply all or nothing.",
        {"type": "object", "properties": {"files": {"type": "array", "minItems": 1, "items": {
            "type": "object", "properties": {
                "path": _PATH,
                "edits": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "properties": {
                        "old": {"type": "string"}, "new": {"type": "string"},
                        "replace_all": {"type": "boolean"}},
                    "required": ["old", "new"]}}},
            "required": ["path", "edits"]}}},
         "required": ["files"]}),
    "execute": (
        "Run a shell command in the workspace. Returns exit code and output; with background=true it "
        "returns a process id to follow with process_output.",
        {"type": "object", "properties": {
            "command": {"type": "string"},
            "cwd": {"type": "string", "description": "Working directory (default: the workspace)."},
            "timeout_ms": {"type": "integer", "minimum": 1, "maximum": 600000},
            "background": {"type": "boolean"}},
         "required": ["command"]}),
    "process_list": ("List the processes started with execute.", {"type": "object", "properties": {}}),
    "process_output": (
        "Output of a process started with execute (and whether it still runs).",
        {"type": "object", "properties": {"process_id": {"type": "string"}}, "required": ["process_id"]}),
    "process_signal": (
        "Send a signal to a process started with execute.",
        {"type": "object", "properties": {"process_id": {"type": "string"},
                                          "signal": {"type": "string", "enum": ["TERM", "KILL", "INT"]}},
         "required": ["process_id", "signal"]}),
}

RESERVED = frozenset(SCHEMAS)


async def _op(client: AgentClient, method: str, path: str, body: Any = None,
              timeout: float | None = None) -> Any:
    response = await client._request(method, path, json=body, timeout=timeout)  # noqa: SLF001 - same package
    return response.json()


def _dump(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


async def _read_file(client: AgentClient, args: dict[str, Any]) -> CallToolResult:
    body = await _op(client, "POST", "/api/v0/fs/read", args)
    text = body.get("content", "")
    if body.get("truncated"):
        nxt = body.get("next_offset")
        text += f"\n[file has {body.get('total_lines')} lines; continue with offset={nxt}]"
    return text_result(text)


async def _write_file(client: AgentClient, args: dict[str, Any]) -> CallToolResult:
    body = await _op(client, "POST", "/api/v0/fs/write", args)
    return text_result(_dump(body))


async def _edit_files(client: AgentClient, args: dict[str, Any]) -> CallToolResult:
    files = args.get("files")
    if not isinstance(files, list) or not files:
        return error_result("edit_files needs a non-empty `files` list")
    diffs: list[str] = []
    for item in files:
        try:
            body = await _op(client, "POST", "/api/v0/fs/edit", item)
        except AgentError as exc:
            done = f" (files before it were edited: {len(diffs)})" if diffs else ""
            return error_result(f"editing {item.get('path')!r} failed: {exc}{done}")
        diffs.append(body.get("diff", ""))
    return text_result("\n".join(diffs) or "no changes")


async def _execute(client: AgentClient, args: dict[str, Any]) -> CallToolResult:
    timeout_ms = args.get("timeout_ms") or 60_000
    body = await _op(client, "POST", "/api/v0/exec", args, timeout=timeout_ms / 1000 + 10)
    if "process_id" in body:
        return text_result(f"started in the background: process_id={body['process_id']}")
    output = body.get("output", "")
    status = f"exit code {body.get('exit_code')}" + (" (timed out)" if body.get("timed_out") else "")
    return text_result(f"{output}\n[{status}]" if output else f"[{status}]", is_error=body.get("exit_code") != 0)


async def _process_list(client: AgentClient, args: dict[str, Any]) -> CallToolResult:
    body = await _op(client, "GET", "/api/v0/processes")
    return text_result(_dump(body))


async def _process_output(client: AgentClient, args: dict[str, Any]) -> CallToolResult:
    body = await _op(client, "GET", f"/api/v0/processes/{args.get('process_id', '')}/output")
    state = "running" if body.get("running") else f"exited with {body.get('exit_code')}"
    return text_result(f"{body.get('output', '')}\n[{state}]")


async def _process_signal(client: AgentClient, args: dict[str, Any]) -> CallToolResult:
    body = await _op(client, "POST", f"/api/v0/processes/{args.get('process_id', '')}/signal",
                     {"signal": args.get("signal")})
    return text_result(_dump(body))


_IMPLS: dict[str, Callable[[AgentClient, dict[str, Any]], Awaitable[CallToolResult]]] = {
    "read_file": _read_file, "write_file": _write_file, "edit_files": _edit_files, "execute": _execute,
    "process_list": _process_list, "process_output": _process_output, "process_signal": _process_signal,
}


def builtin_tools(client: AgentClient) -> Gathered:
    def make(name: str) -> OfferedTool:
        impl = _IMPLS[name]

        async def call(arguments: dict[str, Any]) -> CallToolResult:
            try:
                return await impl(client, arguments)
            except AgentError as exc:
                where = "the workspace agent is unreachable" if exc.status == 0 else f"agent answered {exc.status}"
                return error_result(f"{name} failed ({where}): {exc}")

        description, schema = SCHEMAS[name]
        return OfferedTool(name=name, source="builtin", server=None, source_name=name,
                           description=description, parameters=schema, call=call)

    return Gathered(tools=[make(name) for name in SCHEMAS])
