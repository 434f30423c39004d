"""The chat server's long-lived parts, created once per process by the app's lifespan."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from workdock.chat.catalog import Budget
from workdock.chat.chats import ChatManager
from workdock.chat.models import ModelCatalog
from workdock.chat.store.repo import Store
from workdock.chat.stream import EventBus
from workdock.chat.tools.admin import AdminServers
from workdock.chat.tools.workspace import AgentPool
from workdock.chat.toolset import ToolGatherer
from workdock.http_limits import size_from_env
from workdock.mcp.limits import MAX_RESULT_ENV, parse_limit
from workdock.ratelimit import FailedAttempts, RateLimitSettings
from workdock.secretbox import key_from_env

MAX_REQUEST_BYTES_ENV = "WORKDOCK_MAX_REQUEST_BYTES"
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
MAX_MESSAGE_BYTES_ENV = "WORKDOCK_MAX_MESSAGE_BYTES"
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024  # every turn sends the whole history to the model again
PUBLIC_URL_ENV = "WORKDOCK_PUBLIC_URL"
TRUSTED_PROXIES_ENV = "WORKDOCK_TRUSTED_PROXIES"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "workdock"


@dataclass
class ServerConfig:
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = None  # default: SQLite in data_dir
    public_url: str = "http://127.0.0.1:3000"  # where users reach the server (printed in login URLs)
    # The URL agents are told to dial in connect commands; default: the one the request came in on.
    agent_server_url: str | None = None
    # Peers whose X-Forwarded-Proto/-For are believed (uvicorn's forwarded_allow_ips); none by default.
    trusted_proxies: tuple[str, ...] = ()
    # Per admin tool call, seconds (a workspace server's own `timeout` rules its calls).
    tool_timeout: float = 60.0
    admin_connect_timeout: float = 30.0
    # The most one message from an admin MCP server may take (--max-result-bytes).
    max_result_bytes: int = field(default_factory=lambda: parse_limit(os.environ.get(MAX_RESULT_ENV)))
    models: ModelCatalog | None = None  # default: from WORKDOCK_MODELS
    quiet: bool = False  # do not print the first-start login URL (tests)
    auth_failures: RateLimitSettings = field(default_factory=RateLimitSettings.from_env)
    max_request_bytes: int = field(
        default_factory=lambda: size_from_env(MAX_REQUEST_BYTES_ENV, DEFAULT_MAX_REQUEST_BYTES)
    )
    # WORKDOCK_SECRET_KEY; without it the key lives in <data dir>/secret.key.
    secret_key: str | None = field(default_factory=key_from_env, repr=False)
    max_message_bytes: int = field(
        default_factory=lambda: size_from_env(MAX_MESSAGE_BYTES_ENV, DEFAULT_MAX_MESSAGE_BYTES)
    )
    # Above it a chat's tools are deferred behind find_tools (WORKDOCK_TOOL_BUDGET_TOOLS/_TOKENS).
    tool_budget: Budget = field(default_factory=Budget.from_env)

    @property
    def https(self) -> bool:
        return self.public_url.startswith("https://")


@dataclass
class Services:
    config: ServerConfig
    store: Store
    bus: EventBus
    pool: AgentPool
    admin: AdminServers
    gatherer: ToolGatherer
    models: ModelCatalog
    chats: ChatManager
    attempts: FailedAttempts
