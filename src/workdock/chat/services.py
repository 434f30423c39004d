"""The chat server's long-lived parts, created once per process by the app's lifespan."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from workdock.chat.chats import ChatManager
from workdock.chat.models import ModelCatalog
from workdock.chat.store.repo import Store
from workdock.chat.stream import EventBus
from workdock.chat.tools.admin import AdminServers
from workdock.chat.tools.workspace import AgentPool
from workdock.chat.toolset import ToolGatherer
from workdock.mcp.limits import MAX_RESULT_ENV, parse_limit


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "workdock"


@dataclass
class ServerConfig:
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = None  # default: SQLite in data_dir
    public_url: str = "http://127.0.0.1:3000"  # where users reach the server (printed in login URLs)
    tool_timeout: float = (
        60.0  # per admin tool call, seconds (a workspace server's own `timeout` rules its calls)
    )
    admin_connect_timeout: float = 30.0
    # The most one message from an admin MCP server may take (--max-result-bytes).
    max_result_bytes: int = field(default_factory=lambda: parse_limit(os.environ.get(MAX_RESULT_ENV)))
    models: ModelCatalog | None = None  # default: from WORKDOCK_MODELS
    quiet: bool = False  # do not print the first-start login URL (tests)


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
