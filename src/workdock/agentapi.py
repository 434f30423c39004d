"""Wire models of the agent's HTTP API and an async client for it.

The agent serves these shapes (``workdock.agent``); the chat server and the CLI
read them through :class:`AgentClient`. Keeping both sides on one set of models
is what keeps them in step.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, overload

import httpx2
from pydantic import BaseModel, ConfigDict, Field

ServerState = Literal[
    "connecting",
    "ready",
    "restarting",
    "failed",
    "disabled",
    "needs_auth",
    "pending_approval",
    "needs_input",
]


class WireModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---- MCP tools -----------------------------------------------------------------------------------


class ToolInfo(WireModel):
    server_name: str
    name: str
    original_name: str
    description: str = ""
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    required: list[str] = Field(default_factory=list)
    input_schema: dict[str, Any] = Field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None

    model_config = ConfigDict(extra="ignore", populate_by_name=True, serialize_by_alias=True)


class ToolList(WireModel):
    version: str
    tools: list[ToolInfo] = Field(default_factory=list)


class CallToolRequest(WireModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    tool_name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    timeout_ms: int | None = Field(default=None, gt=0, le=600_000)


class ContentBlock(WireModel):
    """One piece of a tool result; which fields are set depends on ``type``."""

    model_config = ConfigDict(extra="allow")

    type: Literal["text", "image", "audio", "resource", "resource_link"]
    text: str | None = None
    data: str | None = None
    media_type: str | None = None
    uri: str | None = None
    name: str | None = None
    description: str | None = None


class CallToolResult(WireModel):
    content: list[ContentBlock] = Field(default_factory=list)
    is_error: bool = False
    structured_content: Any = None


class ElicitationAnswer(WireModel):
    """The user's answer to a server's request for input (``action`` accept, decline or cancel)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    action: Literal["accept", "decline", "cancel"]
    content: dict[str, str | int | float | bool | list[str] | None] | None = Field(
        default=None, description="the form's values, with accept only; checked against the requested schema"
    )


class ElicitationAnswered(WireModel):
    id: str
    action: Literal["accept", "decline", "cancel"]


class InputNeeded(WireModel):
    id: str
    description: str = ""
    password: bool = Field(default=False, description="a secret: never shown, kept in memory only")
    env: str = Field(description="the agent's environment variable that gives it (WORKDOCK_INPUT_<ID>)")
    options: list[str] = Field(default_factory=list, description="a pickString's choices: the value is one")
    default: str | None = Field(default=None, description="the choice to offer first")


# ---- MCP resources and prompts --------------------------------------------------------------------


class ResourceInfo(WireModel):
    id: str = Field(
        description="offered id: routes to this server's resource (read-resource takes it as uri)"
    )
    server_name: str
    uri: str = Field(description="the server's own URI")
    name: str
    title: str | None = None
    description: str | None = None
    mime_type: str | None = None
    size: int | None = None
    annotations: dict[str, Any] | None = None


class ResourceList(WireModel):
    version: str
    resources: list[ResourceInfo] = Field(default_factory=list)


class ResourceTemplateInfo(WireModel):
    server_name: str
    uri_template: str
    name: str
    title: str | None = None
    description: str | None = None
    mime_type: str | None = None


class ResourceTemplateList(WireModel):
    version: str
    resource_templates: list[ResourceTemplateInfo] = Field(default_factory=list)


class PromptArgumentInfo(WireModel):
    name: str
    description: str | None = None
    required: bool = False


class PromptInfo(WireModel):
    server_name: str
    name: str = Field(description="offered name, <server>__<prompt>")
    original_name: str
    title: str | None = None
    description: str | None = None
    arguments: list[PromptArgumentInfo] = Field(default_factory=list)


class PromptList(WireModel):
    version: str
    prompts: list[PromptInfo] = Field(default_factory=list)


class ReadResourceRequest(WireModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    uri: str = Field(min_length=1, max_length=8192, description="a URI, or a resource's offered id")
    server: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="the server to read from (needed when several offer it)",
    )
    timeout_ms: int | None = Field(default=None, gt=0, le=600_000)


class ReadResourceResult(WireModel):
    server_name: str
    uri: str
    contents: list[ContentBlock] = Field(default_factory=list)


class GetPromptRequest(WireModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    name: str = Field(min_length=1, max_length=256)
    arguments: dict[str, str] = Field(default_factory=dict)
    timeout_ms: int | None = Field(default=None, gt=0, le=600_000)


class PromptMessage(WireModel):
    role: Literal["user", "assistant"]
    content: ContentBlock


class GetPromptResult(WireModel):
    name: str
    server_name: str
    description: str | None = None
    messages: list[PromptMessage] = Field(default_factory=list)


class ServerStatus(WireModel):
    name: str
    transport: Literal["stdio", "http", "sse"] | None = None
    state: ServerState
    tool_count: int = 0
    error: str | None = None
    stderr_tail: list[str] = Field(default_factory=list)
    restarts: int = 0
    protocol_version: str | None = None
    config_file: str | None = None
    warnings: list[str] = Field(default_factory=list)
    # needs_auth: where the user signs in (it carries no secret: state and a PKCE challenge)
    authorization_url: str | None = None
    # pending_approval: what it would run or dial (variables as written, env and header names only)
    launch: str | None = None
    # needs_input: the values it waits for
    inputs: list[InputNeeded] = Field(default_factory=list)


class AuthCallback(WireModel):
    """What the authorization server sent back to the redirect URI, handed to the agent."""

    model_config = ConfigDict(extra="ignore", strict=True)

    code: str = Field(min_length=1, max_length=4096)
    state: str = Field(min_length=1, max_length=1024)
    iss: str | None = Field(default=None, max_length=2048)


SIGN_IN_RESTART_BUDGET = 45.0  # the agent gives a restarted sign-in 30 s to publish its URL


class AuthStart(WireModel):
    """Start a waiting sign-in again, redirecting to ``redirect_uri`` (null: the agent's loopback one)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    redirect_uri: str | None = Field(default=None, min_length=1, max_length=2048)


class AuthStarted(WireModel):
    authorization_url: str


class ConfigFileStatus(WireModel):
    path: str
    state: Literal["loaded", "missing", "invalid"]
    error: str | None = None
    # Added later; absent from older agents, hence the default.
    warnings: list[str] = Field(default_factory=list)
    # invalid, but valid before: these servers of its last good version keep running
    kept_servers: list[str] = Field(default_factory=list)


class ServerList(WireModel):
    servers: list[ServerStatus] = Field(default_factory=list)
    config_files: list[ConfigFileStatus] = Field(default_factory=list)


class TrustRequest(WireModel):
    """Approve project servers: by name, every one from a file, or every one pending (one of the three)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    servers: list[str] = Field(default_factory=list, max_length=1000)
    file: str | None = Field(default=None, max_length=4096, description="a config file's path, as listed")
    all: bool = False


class TrustResult(WireModel):
    approved: list[str] = Field(description="the servers approved, now starting")


class InputRequest(WireModel):
    """A value for ``${input:ID}``: kept in the agent's memory only, never written or logged."""

    model_config = ConfigDict(extra="ignore", strict=True)

    id: str = Field(min_length=1, max_length=200)
    value: str = Field(max_length=65536)


class InputResult(WireModel):
    servers: list[str] = Field(description="the servers that waited for it")


class ErrorBody(WireModel):
    message: str
    detail: str | None = None


class Health(WireModel):
    status: str


# ---- workspace operations (spec/chat.md section 5) -------------------------------------------------
# Requests are strict: a number where a path belongs is a 400, not a file named "42".


class ReadFileRequest(WireModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    path: str = Field(min_length=1, description="relative to the workspace dir unless absolute")
    offset: int = Field(default=0, ge=0, description="lines to skip from the start of the file")
    limit: int = Field(default=2000, gt=0, description="at most this many lines")


class ReadFileResult(WireModel):
    path: str
    content: str
    total_lines: int
    offset: int
    lines: int = Field(description="lines in content")
    next_offset: int | None = Field(description="offset to read on from; null at the end of the file")
    truncated: bool = Field(description="the file goes on past content (limit or size cap)")
    invalid_utf8: bool = Field(default=False, description="bytes that are not UTF-8 were replaced by U+FFFD")
    size: int = Field(description="file size in bytes")


class WriteFileRequest(WireModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    path: str = Field(min_length=1)
    content: str


class WriteFileResult(WireModel):
    path: str
    bytes_written: int
    created: bool


class FileEdit(WireModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    old: str = Field(min_length=1)
    new: str
    replace_all: bool = False


class EditFileRequest(WireModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    path: str = Field(min_length=1)
    edits: list[FileEdit] = Field(min_length=1)


class EditFileResult(WireModel):
    path: str
    diff: str = Field(description="unified diff of the change")
    replacements: int


class ExecRequest(WireModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    command: str = Field(min_length=1)
    cwd: str | None = None
    timeout_ms: int | None = Field(
        default=None, gt=0, le=600_000, description="default 60000 in the foreground, none in the background"
    )
    background: bool = False


class ExecResult(WireModel):
    exit_code: int = Field(description="128 + signal number when a signal ended the command")
    output: str = Field(description="stdout and stderr interleaved")
    truncated: bool
    timed_out: bool = False
    signal: str | None = Field(default=None, description="the signal that ended the command")
    duration_ms: int


class ProcessStarted(WireModel):
    process_id: str


class ProcessInfo(WireModel):
    id: str
    command: str
    cwd: str
    pid: int
    background: bool
    running: bool
    exit_code: int | None = None
    signal: str | None = None
    timed_out: bool = False
    started_at: datetime
    finished_at: datetime | None = None
    output_bytes: int


class ProcessList(WireModel):
    processes: list[ProcessInfo] = Field(default_factory=list)


class ProcessOutput(WireModel):
    id: str
    output: str
    offset: int = Field(description="byte offset of output in the process's whole output")
    next_offset: int = Field(description="byte offset to read on from")
    truncated: bool = Field(description="bytes between the requested offset and next_offset are missing")
    running: bool
    exit_code: int | None = None
    signal: str | None = None
    timed_out: bool = False


class SignalRequest(WireModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    signal: Literal["TERM", "KILL", "INT"]


# ---- streamed answers (Accept: text/event-stream) -------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """A ``notifications/progress`` of the running call."""

    progress: float
    total: float | None = None
    message: str | None = None


@dataclass(frozen=True)
class Output:
    """A piece of a running command's output (stdout and stderr interleaved)."""

    text: str


@dataclass(frozen=True)
class Elicitation:
    """The server asks the user for input; answer with :meth:`AgentClient.answer_elicitation`."""

    id: str
    message: str
    mode: str = "form"
    requested_schema: dict[str, Any] | None = None
    url: str | None = None

    def describe(self) -> dict[str, Any]:
        body: dict[str, Any] = {"mode": self.mode, "message": self.message}
        if self.url is not None:
            body["url"] = self.url
        else:
            body["requested_schema"] = self.requested_schema or {"type": "object", "properties": {}}
        return body


CallEvent = Progress | Elicitation | CallToolResult
"""What a streamed call-tool yields: progress and requests for input, and last its result."""
ExecEvent = Output | ExecResult
"""What a streamed exec yields: output as it comes, and last the result."""

MAX_STREAM_EVENT_BYTES = 64 * 1024 * 1024  # one event: the result, with its images, is the largest
STREAM_READ_TIMEOUT = 60.0  # the agent pings every 10 s, however long a person takes to answer


# ---- client --------------------------------------------------------------------------------------


class AgentError(Exception):
    """The agent answered with an error status (or could not be reached: ``status`` 0)."""

    def __init__(self, status: int, message: str, detail: str | None = None) -> None:
        super().__init__(f"{message}: {detail}" if detail else message)
        self.status = status
        self.message = message
        self.detail = detail


class AgentUnavailable(httpx2.ConnectError):
    """Raised by a transport that knows why the agent cannot be reached now (a linked agent that is
    not connected); its message is for users and is passed on as it is."""


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context (httpx2's default one) for every agent client: making one loads the CA
    bundle, which takes a few hundred milliseconds on a busy machine, and the chat server holds a
    client per workspace (a list of 50 workspaces made 50 at once)."""
    return httpx2.create_ssl_context()


class AgentClient:
    """Talks to one agent. Reuses one keep-alive connection pool; close with ``aclose``.

    ``transport`` decides the way requests go (direct HTTP by default, or the agent link); with no
    ``token`` no Authorization header is sent (the link authenticates the agent instead).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx2.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"} if token is not None else None,
            timeout=timeout,
            transport=transport,
            verify=_tls(),
        )

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> httpx2.Response:
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = timeout
        try:
            response = await self._http.request(
                method, path, json=json, params=params, headers=headers, **extra
            )
        except httpx2.TransportError as exc:
            raise _transport_error(self.base_url, exc) from exc
        if response.status_code not in ok:
            raise _status_error(response)
        return response

    async def healthz(self, *, timeout: float | None = None) -> bool:
        response = await self._request("GET", "/healthz", timeout=timeout)
        return bool(response.json().get("status") == "ok")

    async def list_tools(
        self, *, refresh: bool = False, etag: str | None = None, timeout: float | None = None
    ) -> ToolList | None:
        """The agent's catalog; ``None`` when ``etag`` is still current (304)."""
        headers = {"If-None-Match": etag} if etag else None
        params = {"refresh": "true"} if refresh else None
        response = await self._request(
            "GET", "/api/v0/mcp/tools", params=params, headers=headers, timeout=timeout, ok=(200, 304)
        )
        if response.status_code == 304:
            return None
        return ToolList.model_validate_json(response.content)

    async def call_tool(
        self, tool_name: str, arguments: dict[str, Any] | None = None, *, timeout_ms: int | None = None
    ) -> CallToolResult:
        body: dict[str, Any] = {"tool_name": tool_name, "arguments": arguments or {}}
        if timeout_ms is not None:
            body["timeout_ms"] = timeout_ms
        # The HTTP wait outlasts the agent's own timeout so the agent's 504 is what we see.
        wait = (timeout_ms or 600_000) / 1000 + 10
        response = await self._request("POST", "/api/v0/mcp/call-tool", json=body, timeout=wait)
        return CallToolResult.model_validate_json(response.content)

    async def call_tool_events(
        self, tool_name: str, arguments: dict[str, Any] | None = None, *, timeout_ms: int | None = None
    ) -> AsyncGenerator[CallEvent, None]:
        """Call a tool with its progress and requests for input streamed: the last item is the
        result. Leaving the iteration early hangs up, which cancels the call upstream."""
        body: dict[str, Any] = {"tool_name": tool_name, "arguments": arguments or {}}
        if timeout_ms is not None:
            body["timeout_ms"] = timeout_ms
        async with self._events("/api/v0/mcp/call-tool", body) as events:
            async for name, data in events:
                if name == "progress":
                    yield Progress(data["progress"], data.get("total"), data.get("message"))
                elif name == "elicitation":
                    yield Elicitation(
                        id=data["id"],
                        message=data.get("message", ""),
                        mode=data.get("mode", "form"),
                        requested_schema=data.get("requested_schema"),
                        url=data.get("url"),
                    )
                elif name == "result":
                    yield CallToolResult.model_validate(data)
                    return

    async def answer_elicitation(
        self,
        elicitation_id: str,
        action: Literal["accept", "decline", "cancel"],
        content: dict[str, Any] | None = None,
    ) -> ElicitationAnswered:
        """Answer a request for input of a streamed call (400 bad content, 404 over, 409 answered)."""
        body = ElicitationAnswer.model_validate({"action": action, "content": content}).model_dump(
            exclude_none=True
        )
        response = await self._request("POST", f"/api/v0/mcp/elicitations/{elicitation_id}", json=body)
        return ElicitationAnswered.model_validate_json(response.content)

    async def exec_events(
        self, command: str, *, cwd: str | None = None, timeout_ms: int | None = None
    ) -> AsyncGenerator[ExecEvent, None]:
        """Run a command in the foreground with its output streamed: the last item is the result.
        Leaving the iteration early hangs up, which ends the command."""
        body = ExecRequest(command=command, cwd=cwd, timeout_ms=timeout_ms).model_dump(exclude_none=True)
        async with self._events("/api/v0/exec", body) as events:
            async for name, data in events:
                if name == "output":
                    yield Output(data["text"])
                elif name == "result":
                    yield ExecResult.model_validate(data)
                    return

    @asynccontextmanager
    async def _events(self, path: str, body: dict[str, Any]) -> AsyncIterator[AsyncIterator[tuple[str, Any]]]:
        """POST ``body`` asking for Server-Sent Events; yields (event, data) until ``result``. An
        error status, an ``error`` event or a stream that ends without a result is an AgentError."""
        timeout = httpx2.Timeout(30.0, read=STREAM_READ_TIMEOUT)
        request = self._http.build_request(
            "POST", path, json=body, headers={"Accept": "text/event-stream"}, timeout=timeout
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx2.HTTPError as exc:
            raise _transport_error(self.base_url, exc) from exc
        try:
            if response.status_code != 200:
                await response.aread()
                raise _status_error(response)
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                # An agent from before streaming ignores Accept: its plain body is the result
                # (which must then come within the read timeout, as no pings keep it waiting).
                try:
                    await response.aread()
                except httpx2.HTTPError as exc:
                    raise _transport_error(self.base_url, exc) from exc
                yield _plain_result(response)
                return

            async def events() -> AsyncIterator[tuple[str, Any]]:
                try:
                    async for event in httpx2.EventSource(response, max_event_size=MAX_STREAM_EVENT_BYTES):
                        data: Any = event.json()
                        if event.event == "error":
                            error = data
                            raise AgentError(
                                int(error.get("status") or 502), error["message"], error.get("detail")
                            )
                        yield event.event, data
                        if event.event == "result":
                            return
                except httpx2.HTTPError as exc:
                    raise _transport_error(self.base_url, exc) from exc
                raise AgentError(0, "the agent's answer ended before its result", f"{self.base_url}{path}")

            yield events()
        finally:
            await response.aclose()

    async def _listing(
        self, path: str, refresh: bool, etag: str | None, timeout: float | None
    ) -> bytes | None:
        headers = {"If-None-Match": etag} if etag else None
        params = {"refresh": "true"} if refresh else None
        response = await self._request(
            "GET", f"/api/v0/mcp/{path}", params=params, headers=headers, timeout=timeout, ok=(200, 304)
        )
        return None if response.status_code == 304 else response.content

    async def list_resources(
        self, *, refresh: bool = False, etag: str | None = None, timeout: float | None = None
    ) -> ResourceList | None:
        """The catalog's resources; ``None`` when ``etag`` is still current (304)."""
        body = await self._listing("resources", refresh, etag, timeout)
        return None if body is None else ResourceList.model_validate_json(body)

    async def list_resource_templates(
        self, *, refresh: bool = False, etag: str | None = None, timeout: float | None = None
    ) -> ResourceTemplateList | None:
        body = await self._listing("resource-templates", refresh, etag, timeout)
        return None if body is None else ResourceTemplateList.model_validate_json(body)

    async def list_prompts(
        self, *, refresh: bool = False, etag: str | None = None, timeout: float | None = None
    ) -> PromptList | None:
        body = await self._listing("prompts", refresh, etag, timeout)
        return None if body is None else PromptList.model_validate_json(body)

    async def read_resource(
        self, uri: str, *, server: str | None = None, timeout_ms: int | None = None
    ) -> ReadResourceResult:
        """Read ``uri`` (or a resource's offered id); ``server`` picks the server when several offer it."""
        body = ReadResourceRequest(uri=uri, server=server, timeout_ms=timeout_ms).model_dump(
            exclude_none=True
        )
        wait = (timeout_ms or 600_000) / 1000 + 10
        response = await self._request("POST", "/api/v0/mcp/read-resource", json=body, timeout=wait)
        return ReadResourceResult.model_validate_json(response.content)

    async def get_prompt(
        self, name: str, arguments: dict[str, str] | None = None, *, timeout_ms: int | None = None
    ) -> GetPromptResult:
        body = GetPromptRequest(name=name, arguments=arguments or {}, timeout_ms=timeout_ms).model_dump(
            exclude_none=True
        )
        wait = (timeout_ms or 600_000) / 1000 + 10
        response = await self._request("POST", "/api/v0/mcp/get-prompt", json=body, timeout=wait)
        return GetPromptResult.model_validate_json(response.content)

    async def servers(self, *, timeout: float | None = None) -> ServerList:
        response = await self._request("GET", "/api/v0/mcp/servers", timeout=timeout)
        return ServerList.model_validate_json(response.content)

    async def auth_callback(self, server: str, callback: AuthCallback) -> None:
        """Hand a sign-in's authorization code to the agent, which finishes the flow it started."""
        await self._request(
            "POST",
            f"/api/v0/mcp/servers/{server}/auth/callback",
            json=callback.model_dump(exclude_none=True),
            ok=(204,),
        )

    async def auth_start(self, server: str, redirect_uri: str | None = None) -> str:
        """Have the agent start a server's waiting sign-in again for ``redirect_uri``; the URL to open."""
        response = await self._request(
            "POST",
            f"/api/v0/mcp/servers/{server}/auth/start",
            json=AuthStart(redirect_uri=redirect_uri).model_dump(),
            timeout=SIGN_IN_RESTART_BUDGET,
        )
        return AuthStarted.model_validate_json(response.content).authorization_url

    async def trust(
        self, servers: list[str] | None = None, *, file: str | None = None, all: bool = False
    ) -> TrustResult:
        """Approve project servers that wait for it (``pending_approval``); they start."""
        body = TrustRequest(servers=servers or [], file=file, all=all).model_dump(exclude_none=True)
        response = await self._request("POST", "/api/v0/mcp/trust", json=body)
        return TrustResult.model_validate_json(response.content)

    async def give_input(self, input_id: str, value: str) -> InputResult:
        response = await self._request("POST", "/api/v0/mcp/inputs", json={"id": input_id, "value": value})
        return InputResult.model_validate_json(response.content)

    # ---- workspace operations (spec/chat.md section 5) ---------------------------------------------

    async def read_file(self, path: str, *, offset: int = 0, limit: int = 2000) -> ReadFileResult:
        """Lines ``offset`` to ``offset + limit`` of a text file (``offset`` counts lines to skip)."""
        body = ReadFileRequest(path=path, offset=offset, limit=limit).model_dump()
        response = await self._request("POST", "/api/v0/fs/read", json=body)
        return ReadFileResult.model_validate_json(response.content)

    async def write_file(self, path: str, content: str) -> WriteFileResult:
        body = WriteFileRequest(path=path, content=content).model_dump()
        response = await self._request("POST", "/api/v0/fs/write", json=body)
        return WriteFileResult.model_validate_json(response.content)

    async def edit_file(self, path: str, edits: list[FileEdit]) -> EditFileResult:
        """Apply every edit or none; a 409 ``AgentError`` names the edit that did not match once."""
        body = EditFileRequest(path=path, edits=edits).model_dump()
        response = await self._request("POST", "/api/v0/fs/edit", json=body)
        return EditFileResult.model_validate_json(response.content)

    @overload
    async def exec(
        self,
        command: str,
        *,
        cwd: str | None = None,
        timeout_ms: int | None = None,
        background: Literal[False] = False,
    ) -> ExecResult: ...

    @overload
    async def exec(
        self,
        command: str,
        *,
        cwd: str | None = None,
        timeout_ms: int | None = None,
        background: Literal[True],
    ) -> ProcessStarted: ...

    async def exec(
        self, command: str, *, cwd: str | None = None, timeout_ms: int | None = None, background: bool = False
    ) -> ExecResult | ProcessStarted:
        body = ExecRequest(command=command, cwd=cwd, timeout_ms=timeout_ms, background=background).model_dump(
            exclude_none=True
        )
        if background:
            response = await self._request("POST", "/api/v0/exec", json=body)
            return ProcessStarted.model_validate_json(response.content)
        # The HTTP wait outlasts the command's timeout and the agent's ending of its process group,
        # so the agent's answer (timed_out) is what we see.
        wait = (timeout_ms or 60_000) / 1000 + 15
        response = await self._request("POST", "/api/v0/exec", json=body, timeout=wait)
        return ExecResult.model_validate_json(response.content)

    async def list_processes(self) -> ProcessList:
        response = await self._request("GET", "/api/v0/processes")
        return ProcessList.model_validate_json(response.content)

    async def process_output(self, process_id: str, *, offset: int | None = None) -> ProcessOutput:
        """The tail of the output, or the output from byte ``offset`` on (pass the last ``next_offset``)."""
        params = {"offset": offset} if offset is not None else None
        response = await self._request("GET", f"/api/v0/processes/{process_id}/output", params=params)
        return ProcessOutput.model_validate_json(response.content)

    async def signal_process(
        self, process_id: str, signal: Literal["TERM", "KILL", "INT"] = "TERM"
    ) -> ProcessInfo:
        body = SignalRequest(signal=signal).model_dump()
        response = await self._request("POST", f"/api/v0/processes/{process_id}/signal", json=body)
        return ProcessInfo.model_validate_json(response.content)


def _transport_error(base_url: str, exc: httpx2.HTTPError) -> AgentError:
    if isinstance(exc, AgentUnavailable):
        return AgentError(0, str(exc))
    if isinstance(exc, httpx2.TimeoutException):
        return AgentError(0, "agent did not answer in time", f"{base_url}: {exc!r}")
    return AgentError(0, "agent unreachable", f"{base_url}: {exc}")


async def _plain_result(response: httpx2.Response) -> AsyncIterator[tuple[str, Any]]:
    try:
        data = response.json()
    except ValueError:
        raise AgentError(502, "the agent answered neither events nor JSON", response.text[:500]) from None
    yield "result", data


def _status_error(response: httpx2.Response) -> AgentError:
    try:
        body = ErrorBody.model_validate_json(response.content)
    except ValueError:
        return AgentError(response.status_code, f"HTTP {response.status_code}", response.text[:500])
    return AgentError(response.status_code, body.message, body.detail)
