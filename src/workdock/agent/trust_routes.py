"""The agent's routes for the trust gate and VS Code inputs: approve project servers, give values.

``POST /api/v0/mcp/trust`` approves servers that are ``pending_approval`` (the approval is kept,
see ``workdock.agent.trust``); ``POST /api/v0/mcp/inputs`` gives a ``${input:ID}`` value to the
servers that are ``needs_input`` (kept in memory only). Both start what they released at once.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from workdock import agentapi
from workdock.agent.runtime import AgentRuntime
from workdock.http_errors import ApiError
from workdock.http_json import api_router
from workdock.http_openapi import error_responses
from workdock.mcp.config import HeldEntry


def _config_path(workspace: Path, file: str) -> str:
    """A file as the status lists it: absolute (relative to the workspace) with links resolved."""
    path = Path(file).expanduser()
    return str((path if path.is_absolute() else workspace / path).resolve())


def trust_router(runtime: AgentRuntime) -> APIRouter:
    router = api_router(prefix="/api/v0/mcp", tags=["mcp"])

    @router.post("/trust", response_model=agentapi.TrustResult, responses=error_responses(400, 401, 404, 429))
    async def trust(request: agentapi.TrustRequest) -> agentapi.TrustResult:
        """Approve project servers waiting for it: by name, all from one file, or all."""
        chosen = sum((bool(request.servers), request.file is not None, request.all))
        if chosen != 1:
            raise ApiError(400, "give exactly one of servers, file or all")
        pending = runtime.pending()
        if request.all:
            entries = pending
        elif request.file is not None:
            wanted = _config_path(runtime.settings.workspace, request.file)
            entries = [e for e in pending if e.config_file == wanted]
            if not entries:
                raise ApiError(404, f"no server from {request.file} waits for approval")
        else:
            by_name = {e.name: e for e in pending}
            unknown = [name for name in request.servers if name not in by_name]
            if unknown:
                waiting = ", ".join(sorted(by_name)) or "none"
                raise ApiError(
                    404,
                    f"not waiting for approval: {', '.join(unknown)}",
                    f"servers waiting for approval: {waiting}",
                )
            entries = [by_name[name] for name in dict.fromkeys(request.servers)]
        return agentapi.TrustResult(approved=await runtime.approve(entries))

    @router.post(
        "/inputs", response_model=agentapi.InputResult, responses=error_responses(400, 401, 404, 429)
    )
    async def give_input(request: agentapi.InputRequest) -> agentapi.InputResult:
        """Give the value of ``${input:ID}`` to the servers that wait for it (kept in memory only)."""
        prompts = [
            (e.name, i)
            for e in runtime.entries
            if isinstance(e, HeldEntry)
            for i in e.inputs
            if i.id == request.id
        ]
        if not prompts:
            raise ApiError(404, f"no server waits for input {request.id!r}")
        for _, prompt in prompts:
            if prompt.options and request.value not in prompt.options:
                raise ApiError(400, f"input {request.id!r} must be one of: {', '.join(prompt.options)}")
        waiting = list(dict.fromkeys(name for name, _ in prompts))
        await runtime.give_input(request.id, request.value)
        return agentapi.InputResult(servers=sorted(waiting))

    return router
