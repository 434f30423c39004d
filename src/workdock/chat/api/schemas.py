"""The chat API's response shapes, for its OpenAPI document (and FastAPI's check of each answer).

Timestamps are the strings the store's UTC-aware datetimes give (``isoformat()``, with
``+00:00``): the same text in every response and in the stream.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from workdock.agentapi import ConfigFileStatus, InputNeeded, ServerState
from workdock.http_openapi import error_responses

Timestamp = Field(json_schema_extra={"format": "date-time"})
ChatStatus = Literal["idle", "running", "error", "interrupted"]


class Out(BaseModel):
    # A field a route returns but its schema lacks is an error (a test fails), not silently dropped
    # from the answer.
    model_config = ConfigDict(extra="forbid")


# ---- users ----------------------------------------------------------------------------------------


class UserOut(Out):
    id: str
    name: str
    is_admin: bool
    created_at: str = Timestamp


class UserCreated(UserOut):
    login_url: str


class UserList(Out):
    users: list[UserOut]


class LoginAnswer(Out):
    user: UserOut


class LoginUrl(Out):
    login_url: str


class TokenOut(Out):
    id: str
    name: str
    created_at: str = Timestamp
    expires_at: str | None = Timestamp


class TokenCreated(TokenOut):
    token: str = Field(description="shown in this answer only")


class TokenList(Out):
    tokens: list[TokenOut]


# ---- workspaces -----------------------------------------------------------------------------------


class WorkspaceOut(Out):
    id: str
    name: str
    connection: Literal["direct", "link"]
    path: str | None = Field(description="where the workspace is, when known; shown beside its name")
    agent_url: str | None = Field(description="a direct workspace's agent; null for a linked one")
    agent_token_set: bool
    created_at: str = Timestamp


class ConnectCommand(Out):
    command: str = Field(description="what to run in the workspace to link its agent")
    env: dict[str, str]


class WorkspaceCreated(WorkspaceOut):
    agent_token: str | None = Field(default=None, description="a linked workspace's token, shown this once")
    connect: ConnectCommand | None = None


class AgentServer(Out):
    name: str
    state: ServerState
    tool_count: int
    error: str | None
    transport: Literal["stdio", "http", "sse"] | None
    restarts: int
    stderr_tail: list[str]
    warnings: list[str]
    config_file: str | None = None
    launch: str | None = Field(default=None, description="pending_approval: what it would run or dial")
    inputs: list[InputNeeded] = Field(
        default_factory=list, description="needs_input: the values it waits for"
    )


class AgentState(Out):
    connection: Literal["direct", "link"]
    connected: bool
    connected_since: str | None = Timestamp
    disconnected_since: str | None = Timestamp
    last_error: str | None
    agent_version: str | None
    peer: str | None = Field(description="the address a linked agent dialled from")
    reachable: bool
    error: str | None
    servers: list[AgentServer]
    config_files: list[ConfigFileStatus]
    checked_at: str = Field(
        description="when the agent gave this status (a list may show a recent one)",
        json_schema_extra={"format": "date-time"},
    )
    age_s: float = Field(description="how old the status is, in seconds (about 0: taken for this answer)")


class WorkspaceDetail(WorkspaceOut):
    agent: AgentState


class WorkspaceList(Out):
    workspaces: list[WorkspaceDetail]


# ---- admin MCP servers ----------------------------------------------------------------------------


class McpServerStatus(Out):
    state: ServerState
    tool_count: int
    error: str | None


class SignInStarted(Out):
    authorization_url: str = Field(description="where the browser goes to sign in")


class OAuthClientOut(Out):
    client_id: str | None
    client_secret_set: bool = Field(description="whether a client secret is set (it is never shown)")
    scopes: list[str]


class McpServerOut(Out):
    id: str
    slug: str
    url: str
    transport: Literal["http", "sse"]
    headers_set: list[str] = Field(description="names of the headers set (their values are never shown)")
    auth: Literal["headers", "oauth"] = Field(
        description="headers: one shared connection; oauth: each user signs in with their own account"
    )
    oauth: OAuthClientOut | None = Field(description="the pre-registered OAuth client, if one is set")
    allow_tools: list[str]
    deny_tools: list[str]
    enabled: bool
    status: McpServerStatus
    created_at: str = Timestamp
    updated_at: str = Timestamp


class McpServerList(Out):
    servers: list[McpServerOut]


# ---- chats ----------------------------------------------------------------------------------------


class Models(Out):
    models: list[str]
    default: str | None
    hint: str | None


class QueuedOut(Out):
    id: int
    content: str
    created_at: str = Timestamp
    rerun_of: int | None = Field(default=None, description="a retry: the user message it runs again from")


ToolSource = Literal["builtin", "admin", "workspace"]


class ServerRef(Out):
    source: ToolSource
    server: str = Field(min_length=1, max_length=200)


class DisabledTools(Out):
    """What a chat turned off (also the body of ``PATCH /chats/{id}``'s ``disabled_tools``)."""

    sources: list[ToolSource] = Field(default_factory=list, max_length=3)
    servers: list[ServerRef] = Field(default_factory=list, max_length=1000)
    tools: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=10_000
    )


class ToolBudget(Out):
    """A chat's own tool budget; a limit left out (or null) is the server's; 0 means no limit."""

    max_tools: int | None = Field(default=None, ge=0, le=1_000_000)
    max_tokens: int | None = Field(default=None, ge=0, le=100_000_000)


class ChatOut(Out):
    id: str
    workspace_id: str
    title: str
    model: str | None
    status: ChatStatus
    running: bool
    use_admin_servers: bool
    approval_policy: Literal["auto", "ask", "ask-all"]
    always_allow: list[str] = Field(description="tools this chat runs without asking")
    disabled_tools: DisabledTools
    tool_budget: ToolBudget | None = Field(description="the chat's own tool budget; null: the server's")
    created_at: str = Timestamp
    updated_at: str = Timestamp


class PendingApproval(Out):
    tool_call_id: str
    tool_name: str


class ChatDetail(ChatOut):
    queued: list[QueuedOut]
    pending_approvals: list[PendingApproval] = Field(description="tool calls waiting for an answer")


class Answered(Out):
    answered: list[str] = Field(description="the calls this answer settled (several with always)")


class SettingsOut(Out):
    default_approval_policy: Literal["auto", "ask", "ask-all"]


class ChatList(Out):
    chats: list[ChatOut] = Field(description="most recently updated first")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


class MessageOut(Out):
    id: int
    role: Literal["user", "assistant", "tool"]
    created_at: str = Timestamp
    parts: list[dict[str, Any]]
    model: str | None = None
    usage: dict[str, int | None] | None = None
    superseded: bool = Field(default=False, description="replaced by a retry: the model no longer sees it")


class MessageList(Out):
    messages: list[MessageOut]


class Sent(Out):
    queued_id: int
    queued: bool = Field(description="true when it waits behind a running turn")


class RetryQueued(Out):
    queued_id: int
    message_id: int | None = Field(description="the user message the retry runs again from")


class Interrupted(Out):
    interrupted: bool


class ToolOut(Out):
    name: str
    source: Literal["builtin", "admin", "workspace"]
    server: str | None
    description: str
    input_schema: dict[str, Any]
    state: Literal["loaded", "deferred", "disabled"] = Field(
        description="loaded: sent to the model; deferred: reached through find_tools; disabled: turned off"
    )


class CatalogOut(Out):
    deferred: bool = Field(description="the enabled tools are over the budget: most are behind find_tools")
    enabled_tools: int
    schema_tokens: int = Field(description="estimated tokens of all enabled tools' schemas")
    sent_tokens: int = Field(description="estimated tokens of the schemas the model is sent")
    max_tools: int
    max_tokens: int


class ToolFailure(Out):
    source: Literal["builtin", "admin", "workspace"]
    server: str | None
    error: str
    server_id: str | None = Field(
        default=None,
        description="a per-user admin server's id: POST /mcp-servers/{server_id}/signin signs the caller in",
    )


class SignInState(Out):
    server: str
    server_id: str
    state: ServerState = Field(description="the caller's own connection: needs_auth until they sign in")
    error: str | None


class ToolSetOut(Out):
    tools: list[ToolOut]
    failures: list[ToolFailure]
    warnings: list[str]
    catalog: CatalogOut
    sign_ins: list[SignInState] = Field(
        description="the per-user (OAuth) admin servers and the caller's own sign-in to each"
    )


class Health(Out):
    status: str


# ---- the statuses routes answer -------------------------------------------------------------------
# Every authenticated route: 401, 429 (failed attempts), 503 (the database unavailable).
AUTHED = (401, 429, 503)
# ... that takes a body or parameters: 400, 413; that writes: 507 as well.
READS = error_responses(400, *AUTHED)
WRITES = error_responses(400, 413, 507, *AUTHED)


def reads(*more: int) -> dict[int | str, dict[str, Any]]:
    return {**READS, **error_responses(*more)} if more else READS


def writes(*more: int) -> dict[int | str, dict[str, Any]]:
    return {**WRITES, **error_responses(*more)} if more else WRITES


def _ref(method: str, path: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def created(param: str, *targets: tuple[str, str]) -> dict[int | str, dict[str, Any]]:
    """A 201 whose ``id`` feeds ``param`` of the ``(method, path)`` targets: OpenAPI links, which
    a client generator (and schemathesis's stateful runs) follow."""
    return {
        201: {
            "description": "Created",
            "links": {
                f"{method}{path.replace('/', '_')}": {
                    "operationRef": _ref(method, path),
                    "parameters": {param: "$response.body#/id"},
                }
                for method, path in targets
            },
        }
    }
