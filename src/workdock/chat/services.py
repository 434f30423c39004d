"""The chat server's long-lived parts, created once per process by the app's lifespan."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from workdock.chat.catalog import Budget
from workdock.chat.datadir import default_data_dir
from workdock.chat.elicitations import ElicitationAnswers
from workdock.chat.eventlog import EventLog
from workdock.chat.history_cache import max_chats_from_env
from workdock.chat.models import ModelCatalog
from workdock.chat.notify import Notifier
from workdock.chat.replicas import ReplicaRegistry
from workdock.chat.scheduler import Scheduler, SchedulerSettings
from workdock.chat.signins import PendingSignIns
from workdock.chat.status_cache import StatusCache
from workdock.chat.store.repo import Store
from workdock.chat.tools.admin import AdminServers
from workdock.chat.tools.workspace import AgentPool
from workdock.chat.toolset import ToolGatherer
from workdock.http_limits import size_from_env
from workdock.mcp.limits import MAX_RESULT_ENV, parse_limit
from workdock.mcp.questions import Questions
from workdock.ratelimit import FailedAttempts, RateLimitSettings
from workdock.secretbox import key_from_env

MAX_REQUEST_BYTES_ENV = "WORKDOCK_MAX_REQUEST_BYTES"
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
MAX_MESSAGE_BYTES_ENV = "WORKDOCK_MAX_MESSAGE_BYTES"
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024  # every turn sends the whole history to the model again
PUBLIC_URL_ENV = "WORKDOCK_PUBLIC_URL"
TRUSTED_PROXIES_ENV = "WORKDOCK_TRUSTED_PROXIES"
LEASE_ENV = "WORKDOCK_LEASE_SECONDS"
SWEEP_ENV = "WORKDOCK_SWEEP_SECONDS"
MAX_TURNS_ENV = "WORKDOCK_MAX_TURNS"


def scheduler_settings_from_env(environ: Mapping[str, str] | None = None) -> SchedulerSettings:
    """Lease length, sweep interval and concurrent turns per replica; renewals come every sixth of
    the lease, at most every 10 s."""
    environ = os.environ if environ is None else environ
    default = SchedulerSettings()
    try:
        lease = float(environ.get(LEASE_ENV) or default.lease_s)
        sweep = float(environ.get(SWEEP_ENV) or default.sweep_s)
        turns = int(environ.get(MAX_TURNS_ENV) or default.max_turns)
    except ValueError:
        raise ValueError(f"{LEASE_ENV} and {SWEEP_ENV} are seconds, {MAX_TURNS_ENV} a whole number") from None
    if lease < 3 or sweep <= 0 or turns < 0:
        raise ValueError(f"{LEASE_ENV} must be at least 3, {SWEEP_ENV} above 0, {MAX_TURNS_ENV} 0 or more")
    return SchedulerSettings(lease_s=lease, renew_s=min(lease / 6, 10.0), sweep_s=sweep, max_turns=turns)


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
    # HOST:PORT where the other replicas reach this one (--replica-address); default: the host and
    # port of public_url, which is the listen address unless a public URL was given.
    replica_address: str | None = None
    scheduling: SchedulerSettings = field(default_factory=scheduler_settings_from_env)
    # Chats whose history is kept between turns (WORKDOCK_HISTORY_CACHE_CHATS; 0: none).
    history_cache_chats: int = field(default_factory=max_chats_from_env)

    @property
    def https(self) -> bool:
        return self.public_url.startswith("https://")


@dataclass
class Services:
    config: ServerConfig
    store: Store
    events: EventLog
    pool: AgentPool
    admin: AdminServers
    gatherer: ToolGatherer
    models: ModelCatalog
    scheduler: Scheduler
    attempts: FailedAttempts
    notifier: Notifier
    replicas: ReplicaRegistry
    questions: Questions  # the requests for input of the turns running here
    elicitations: ElicitationAnswers  # answers to them, sent on to the replica running the turn
    statuses: StatusCache  # the agents' recent statuses, shown by GET /workspaces
    signins: PendingSignIns  # web sign-ins awaiting their callback
