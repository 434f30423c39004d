"""The workspace operations over HTTP, under /api/v0 (spec/chat.md section 5).

The router carries no auth of its own: the app mounts it behind the agent's token dependency.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request, Response

from workdock.agent.disconnect import until_disconnect
from workdock.agent.streaming import Emit, event_stream, sse_openapi, wants_events
from workdock.agent.workspace import files
from workdock.agent.workspace.paths import os_error, resolve
from workdock.agent.workspace.processes import DEFAULT_TIMEOUT, ProcessTable
from workdock.agentapi import (
    EditFileRequest,
    EditFileResult,
    ExecRequest,
    ExecResult,
    ProcessInfo,
    ProcessList,
    ProcessOutput,
    ProcessStarted,
    ReadFileRequest,
    ReadFileResult,
    SignalRequest,
    WriteFileRequest,
    WriteFileResult,
)
from workdock.http_errors import ApiError
from workdock.http_json import api_router
from workdock.http_openapi import error_responses


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give (all in the one error shape)."""
    return error_responses(400, 401, 413, 429, *statuses)


# A background command's id feeds the process routes (OpenAPI links, followed by stateful clients).
_PROCESS_LINKS: dict[str, Any] = {
    f"{method}_{name}": {
        "operationRef": "#/paths/" + path.replace("/", "~1") + "/" + method,
        "parameters": {"process_id": "$response.body#/process_id"},
    }
    for method, name, path in (
        ("get", "output", "/api/v0/processes/{process_id}/output"),
        ("post", "signal", "/api/v0/processes/{process_id}/signal"),
    )
}


_EXEC_EVENTS = (
    'event: output\ndata: {"text": "building…\\n"}\n\n'
    'event: result\ndata: {"exit_code": 0, "output": "building…\\n", "truncated": false, '
    '"timed_out": false, "signal": null, "duration_ms": 812}\n\n'
)


def _require_dir(path: Path) -> None:
    try:
        info = os.stat(path)
    except OSError as exc:
        raise os_error(exc, path) from exc
    if not stat.S_ISDIR(info.st_mode):
        raise ApiError(400, "not a directory", f"cwd {path} is not a directory")


def workspace_router(root: Path, processes: ProcessTable) -> APIRouter:
    """Routes for files and processes in the workspace dir ``root``; ``processes`` runs the commands."""
    root = Path(os.path.abspath(root))
    router = api_router(prefix="/api/v0", tags=["workspace"])

    @router.post("/fs/read", response_model=ReadFileResult, responses=_errors(403, 404))
    async def read_file(request: ReadFileRequest) -> ReadFileResult:
        """Lines of a text file; binary files and directories are refused."""
        path = resolve(root, request.path)
        return await to_thread.run_sync(files.read_file, path, request.offset, request.limit)

    @router.post("/fs/write", response_model=WriteFileResult, responses=_errors(403, 404, 507))
    async def write_file(request: WriteFileRequest) -> WriteFileResult:
        """Replace a file's content atomically, creating its parent directories."""
        path = resolve(root, request.path)
        return await to_thread.run_sync(files.write_file, path, request.content)

    @router.post("/fs/edit", response_model=EditFileResult, responses=_errors(403, 404, 409, 507))
    async def edit_file(request: EditFileRequest) -> EditFileResult:
        """Replace exact text in a file: every edit applies or none does."""
        path = resolve(root, request.path)
        return await to_thread.run_sync(files.edit_file, path, request.edits, request.path)

    @router.post(
        "/exec",
        response_model=ExecResult | ProcessStarted,
        responses={
            200: {
                "description": "The result, or the id of a background process. In the foreground with "
                "`Accept: text/event-stream`, Server-Sent Events: `output` pieces as the command prints "
                "them, then one `result` (the result body) or `error` (status and error)",
                "links": _PROCESS_LINKS,
                **sse_openapi(_EXEC_EVENTS),
            },
            **_errors(403, 404, 503),
        },
    )
    async def execute(request: ExecRequest, http: Request) -> ExecResult | ProcessStarted | Response:
        """Run a shell command in the workspace dir (or ``cwd``); in the background, answer at once."""
        cwd = resolve(root, request.cwd) if request.cwd else root
        await to_thread.run_sync(_require_dir, cwd)
        timeout = request.timeout_ms / 1000 if request.timeout_ms is not None else None
        if request.background:
            return ProcessStarted(process_id=await processes.start(request.command, cwd, timeout))
        timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        if wants_events(http):

            async def streamed(emit: Emit) -> dict[str, Any]:
                result = await processes.run(
                    request.command, cwd, timeout, on_output=lambda text: emit("output", {"text": text})
                )
                return result.model_dump(mode="json")

            return event_stream(streamed)
        return await until_disconnect(http.receive, processes.run(request.command, cwd, timeout))

    @router.get("/processes", response_model=ProcessList, responses=_errors())
    async def list_processes() -> ProcessList:
        """Running processes, and finished ones whose output was not yet read."""
        return ProcessList(processes=processes.list_all())

    @router.get("/processes/{process_id}/output", response_model=ProcessOutput, responses=_errors(404))
    async def process_output(
        process_id: str,
        offset: int | None = Query(default=None, ge=0, description="byte offset to read on from"),
    ) -> ProcessOutput:
        """The tail of a process's output, or its output from ``offset`` on."""
        return processes.output(process_id, offset)

    @router.post("/processes/{process_id}/signal", response_model=ProcessInfo, responses=_errors(404, 409))
    async def signal_process(process_id: str, request: SignalRequest) -> ProcessInfo:
        """Send TERM, KILL or INT to the process's whole group."""
        return processes.signal(process_id, request.signal)

    return router
