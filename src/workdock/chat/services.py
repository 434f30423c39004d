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
    tool_timeout: float = 60.0  # per tool call, seconds
    admin_connect_timeout: float = 30.0
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
