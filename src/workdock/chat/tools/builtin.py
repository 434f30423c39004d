"""Built-in workspace tools, carried out by the workspace agent's file and exec endpoints.

Their names are reserved: no MCP tool can take them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workdock.agentapi import (
    AgentClient,
    AgentError,
    CallToolResult,
    EditFileRequest,
    ExecRequest,
    ExecResult,
    Output,
    ReadFileRequest,
    ReadResourceRequest,
    SignalRequest,
    WriteFileRequest,
)
from workdock.chat.tools.base import CallReporter, Gathered, OfferedTool, error_result, text_result

_PATH = {"type": "string", "description": "Path relative to the workspace directory, or absolute."}

SCHEMAS: dict[str, tuple[str, dict[str, Any]]] = {
    "read_file": (
        "Read a text file of the workspace. Large files come in line ranges: pass offset/limit to page.",
        {
            "type": "object",
            "properties": {
                "path": _PATH,
                "offset": {"type": "integer", "minimum": 0, "description": "Lines to skip from the start."},
                "limit": {"type": "integer", "minimum": 1, "description": "At most this many lines."},
            },
            "required": ["path"],
        },
    ),
    "write_file": (
        "Create or replace a file of the workspace with the given content (parent directories are made).",
        {
            "type": "object",
            "properties": {"path": _PATH, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    ),
    "edit_files": (
        "Edit files by exact search and replace. In each file every `old` must match exactly once unless "
        "replace_all is set; a file's edits apply all or nothing.",
        {
            "type": "object",
            "properties": {
                "files": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "path": _PATH,
                            "edits": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "old": {"type": "string"},
                                        "new": {"type": "string"},
                                        "replace_all": {"type": "boolean"},
                                    },
                                    "required": ["old", "new"],
                                },
                            },
                        },
                        "required": ["path", "edits"],
                    },
                }
            },
            "required": ["files"],
        },
    ),
    "execute": (
        "Run a shell command in the workspace. Returns exit code and output; with background=true it "
        "returns a process id to follow with process_output.",
        {
            "type": "object",
            "properties": {
                "command": {"type": "string"},
                "cwd": {"type": "string", "description": "Working directory (default: the workspace)."},
                "timeout_ms": {"type": "integer", "minimum": 1, "maximum": 600000},
                "background": {"type": "boolean"},
            },
            "required": ["command"],
        },
    ),
    "process_list": ("List the processes started with execute.", {"type": "object", "properties": {}}),
    "process_output": (
        "Output of a process started with execute (and whether it still runs).",
        {"type": "object", "properties": {"process_id": {"type": "string"}}, "required": ["process_id"]},
    ),
    "process_signal": (
        "Send a signal to a process started with execute.",
        {
            "type": "object",
            "properties": {
                "process_id": {"type": "string"},
                "signal": {"type": "string", "enum": ["TERM", "KILL", "INT"]},
            },
            "required": ["process_id", "signal"],
        },
    ),
    "read_resource": (
        "Read a resource the workspace's MCP servers offer, by its URI (read-only). Name the server when "
        "several offer the URI.",
        {
            "type": "object",
            "properties": {
                "uri": {"type": "string", "description": "The resource's URI (or a URI its template fits)."},
                "server": {"type": "string", "description": "The MCP server to read it from."},
            },
            "required": ["uri"],
        },
    ),
}

RESERVED = frozenset(SCHEMAS)
# The built-ins that change nothing: they run unasked under the ``ask`` approval policy.
READ_ONLY = frozenset({"read_file", "process_list", "process_output", "read_resource"})


def _dump(value: BaseModel) -> str:
    return orjson.dumps(value.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode()


class _ProcessRef(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    process_id: str = Field(min_length=1)


# The model's arguments are checked against the same request models the agent uses, so a bad
# argument is an error result that names it, and a change to the agent's API fails type checking here.


async def _read_file(client: AgentClient, args: dict[str, Any], _: CallReporter) -> CallToolResult:
    request = ReadFileRequest.model_validate(args)
    body = await client.read_file(request.path, offset=request.offset, limit=request.limit)
    text = body.content
    if body.truncated:
        text += f"\n[file has {body.total_lines} lines; continue with offset={body.next_offset}]"
    return text_result(text)


async def _write_file(client: AgentClient, args: dict[str, Any], _: CallReporter) -> CallToolResult:
    request = WriteFileRequest.model_validate(args)
    return text_result(_dump(await client.write_file(request.path, request.content)))


async def _edit_files(client: AgentClient, args: dict[str, Any], _: CallReporter) -> CallToolResult:
    files = args.get("files")
    if not isinstance(files, list) or not files:
        return error_result("edit_files needs a non-empty `files` list")
    requests = [EditFileRequest.model_validate(item) for item in files]  # all checked before any edit
    diffs: list[str] = []
    for request in requests:
        try:
            body = await client.edit_file(request.path, request.edits)
        except AgentError as exc:
            done = f" (files before it were edited: {len(diffs)})" if diffs else ""
            return error_result(f"editing {request.path!r} failed: {exc}{done}")
        diffs.append(body.diff)
    return text_result("\n".join(diffs) or "no changes")


async def _execute(client: AgentClient, args: dict[str, Any], reporter: CallReporter) -> CallToolResult:
    request = ExecRequest.model_validate(args)
    if request.background:
        started = await client.exec(
            request.command, cwd=request.cwd, timeout_ms=request.timeout_ms, background=True
        )
        return text_result(f"started in the background: process_id={started.process_id}")
    body: ExecResult | None = None
    # Streamed: the card shows the output while the command runs, and an interrupt keeps it.
    async with aclosing(
        client.exec_events(request.command, cwd=request.cwd, timeout_ms=request.timeout_ms)
    ) as events:
        async for event in events:
            if isinstance(event, Output):
                reporter.output(event.text)
            else:
                body = event
    if body is None:
        return error_result("execute failed: the agent's answer ended without the command's result")
    status = f"exit code {body.exit_code}" + (" (timed out)" if body.timed_out else "")
    return text_result(
        f"{body.output}\n[{status}]" if body.output else f"[{status}]", is_error=body.exit_code != 0
    )


async def _process_list(client: AgentClient, args: dict[str, Any], _: CallReporter) -> CallToolResult:
    return text_result(_dump(await client.list_processes()))


async def _process_output(client: AgentClient, args: dict[str, Any], _: CallReporter) -> CallToolResult:
    body = await client.process_output(_ProcessRef.model_validate(args).process_id)
    state = "running" if body.running else f"exited with {body.exit_code}"
    return text_result(f"{body.output}\n[{state}]")


async def _process_signal(client: AgentClient, args: dict[str, Any], _: CallReporter) -> CallToolResult:
    process_id = _ProcessRef.model_validate(args).process_id
    return text_result(
        _dump(await client.signal_process(process_id, SignalRequest.model_validate(args).signal))
    )


async def _read_resource(client: AgentClient, args: dict[str, Any], _: CallReporter) -> CallToolResult:
    request = ReadResourceRequest.model_validate(args)
    body = await client.read_resource(request.uri, server=request.server)
    return CallToolResult(content=body.contents)


_IMPLS: dict[str, Callable[[AgentClient, dict[str, Any], CallReporter], Awaitable[CallToolResult]]] = {
    "read_file": _read_file,
    "write_file": _write_file,
    "edit_files": _edit_files,
    "execute": _execute,
    "process_list": _process_list,
    "process_output": _process_output,
    "process_signal": _process_signal,
    "read_resource": _read_resource,
}


def builtin_tools(client: AgentClient) -> Gathered:
    def make(name: str) -> OfferedTool:
        impl = _IMPLS[name]

        async def call(arguments: dict[str, Any], reporter: CallReporter) -> CallToolResult:
            try:
                return await impl(client, arguments, reporter)
            except ValidationError as exc:
                return error_result(f"invalid arguments for {name}: {_problems(exc)}")
            except AgentError as exc:
                where = (
                    "the workspace agent is unreachable"
                    if exc.status == 0
                    else f"agent answered {exc.status}"
                )
                return error_result(f"{name} failed ({where}): {exc}")

        description, schema = SCHEMAS[name]
        return OfferedTool(
            name=name,
            source="builtin",
            server=None,
            source_name=name,
            description=description,
            parameters=schema,
            call=call,
            read_only=name in READ_ONLY,
        )

    # Versioned by the client: the same client means the same built-in tools.
    return Gathered(tools=[make(name) for name in SCHEMAS], version=client)


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors())
