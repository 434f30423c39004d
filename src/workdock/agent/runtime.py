"""The agent's state: its settings, the config files it read, and the hub they feed."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from watchfiles import Change, awatch

from workdock.agent import trust
from workdock.agent.child_env import Withheld, workspace_env
from workdock.agent.token import state_dir
from workdock.http_limits import size_from_env
from workdock.mcp import config
from workdock.mcp.hub import Hub
from workdock.mcp.limits import DEFAULT_MAX_RESULT_BYTES
from workdock.mcp.oauth import TokenVault
from workdock.ratelimit import RateLimitSettings

logger = logging.getLogger(__name__)

# Config edits are applied within about a second: short debounce, quick polling of the event queue.
WATCH_DEBOUNCE_MS = 150
WATCH_STEP_MS = 30

MAX_REQUEST_BYTES_ENV = "WORKDOCK_AGENT_MAX_REQUEST_BYTES"
# fs/write carries a whole file in its body: large, but bounded.
DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024


MAX_MCP_SESSIONS_ENV = "WORKDOCK_AGENT_MAX_MCP_SESSIONS"
# Sessions open at once on each MCP endpoint path (/mcp, /mcp/SERVER); about 40 KiB each. A
# session unused for 30 minutes ends (the SDK's idle timeout), so this bounds what clients that
# never close theirs can hold; past it a new session is refused with 503 until one ends.
DEFAULT_MAX_MCP_SESSIONS = 1000


def max_request_bytes_from_env() -> int:
    return size_from_env(MAX_REQUEST_BYTES_ENV, DEFAULT_MAX_REQUEST_BYTES)


def max_mcp_sessions_from_env() -> int:
    return size_from_env(MAX_MCP_SESSIONS_ENV, DEFAULT_MAX_MCP_SESSIONS, unit="sessions")


@dataclass(frozen=True)
class AgentSettings:
    workspace: Path
    token: str
    host: str = "127.0.0.1"
    port: int = 4571
    config_files: tuple[Path, ...] = ()
    user_config: bool = False
    connect_timeout: float = 30.0
    workspace_ops: bool = True
    watch: bool = True
    auth_failures: RateLimitSettings = field(default_factory=RateLimitSettings.from_env)
    max_request_bytes: int = field(default_factory=max_request_bytes_from_env)
    max_mcp_sessions: int = field(default_factory=max_mcp_sessions_from_env)
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES
    # What the workspace's children must not see besides the agent token (`workdock up`: the chat
    # server's own settings and secrets).
    withheld_env: Withheld | None = None
    # OAuth sign-ins are kept (sealed) under here, with the key that seals them.
    state_dir: Path = field(default_factory=state_dir)
    # --trust / WORKDOCK_TRUST=1: the project's servers start without asking (provisioned workspaces).
    trust_all: bool = False
    trust_store: Path | None = None  # default $XDG_STATE_HOME/workdock/trust.json

    @property
    def config_paths(self) -> list[Path]:
        return config.config_paths(self.workspace, self.config_files, self.user_config)

    @property
    def project_files(self) -> set[str]:
        """The workspace's own files that the trust gate guards (not one the user passed as --config)."""
        passed = set(config.config_paths(self.workspace, self.config_files)[: len(self.config_files)])
        return {str(p) for p in config.project_paths(self.workspace) if p not in passed}

    def child_env(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a stdio server or a command (see ``child_env``)."""
        return workspace_env(overrides, withheld=self.withheld_env)


def new_hub(settings: AgentSettings) -> Hub:
    """The hub of an agent with these settings (its servers come from :meth:`AgentRuntime.reload`)."""
    return Hub(
        workspace=settings.workspace,
        connect_timeout=settings.connect_timeout,
        child_env=settings.child_env,
        max_result_bytes=settings.max_result_bytes,
        vault=TokenVault(settings.state_dir / "oauth", settings.state_dir),
    )


@dataclass
class AgentRuntime:
    settings: AgentSettings
    hub: Hub
    config_files: tuple[config.ConfigFile, ...] = ()
    # Values for ${input:ID} given through the API: in memory only, never written or logged.
    inputs: dict[str, str] = field(default_factory=dict)
    entries: tuple[config.Entry, ...] = ()  # as applied to the hub: held ones included
    _loaded: config.LoadedConfig | None = None
    _reload_lock: anyio.Lock = field(default_factory=anyio.Lock)
    # watchfiles waits in a thread that cancellation cannot interrupt; this event ends it at once.
    _stop_watching: anyio.Event = field(default_factory=anyio.Event)

    async def reload(self) -> None:
        """Re-read every config file and apply the result; only changed servers are touched."""
        async with self._reload_lock:
            # ${VAR} expands from what a child would see: a config cannot pass on what is withheld.
            loaded = config.load(
                self.settings.config_paths,
                self.settings.child_env(),
                previous=self._loaded,
                workspace=self.settings.workspace,
                inputs=self.inputs,
            )
            previous = {f.path: f for f in self.config_files}
            for status in loaded.files:
                if previous.get(status.path) == status:
                    continue
                if status.state == "invalid":
                    logger.error(
                        "config file %s is invalid: %s; %s",
                        status.path,
                        status.error,
                        config.kept_note(status.kept),
                    )
                for warning in status.warnings:
                    logger.warning("config file %s: %s", status.path, warning)
            self._loaded = loaded
            self.config_files = loaded.files
            entries: list[config.Entry] = list(loaded.entries)
            if not self.settings.trust_all:
                entries = trust.gate(entries, self.settings.project_files, self.store.approved())
            self.entries = tuple(entries)
            await self.hub.apply(entries)

    @property
    def store(self) -> trust.TrustStore:
        return trust.TrustStore(self.settings.trust_store)

    def pending(self) -> list[config.Entry]:
        """The entries waiting for the user's approval, as last loaded."""
        if self._loaded is None or self.settings.trust_all:
            return []
        approved = self.store.approved()
        project = self.settings.project_files
        return [e for e in self._loaded.entries if trust.needs_approval(e, project, approved)]

    async def approve(self, entries: list[config.Entry]) -> list[str]:
        """Record the approval of ``entries`` and start them."""
        names = self.store.approve(entries)
        await self.reload()
        return names

    async def give_input(self, input_id: str, value: str) -> None:
        self.inputs[input_id] = value
        await self.reload()

    async def watch_config(self) -> None:
        """Apply edits, newly created files and atomic rewrites of the config files as they happen."""
        paths = self.settings.config_paths
        wanted = {str(p) for p in paths}
        while not self._stop_watching.is_set():
            # A directory made later (.vscode/, .cursor/) is seen in its parent; then the watch is
            # set up again to include it.
            parents = {p.parent for p in paths}
            directories = sorted(str(d) for d in parents if d.is_dir())
            absent = {str(d) for d in parents if not d.is_dir()}
            if not directories:
                return

            def relevant(_change: Change, path: str, absent: set[str] = absent) -> bool:
                return path in wanted or path in absent

            # Watching the directories (not the files) sees files that appear later and renames over
            # them; not recursively, so a large workspace costs nothing.
            async for changes in awatch(
                *directories,
                watch_filter=relevant,
                recursive=False,
                debounce=WATCH_DEBOUNCE_MS,
                step=WATCH_STEP_MS,
                stop_event=self._stop_watching,
            ):
                logger.info("config changed; reloading")
                await self.reload()
                if any(path in absent for _change, path in changes):
                    break
            else:
                return

    def stop_watching(self) -> None:
        self._stop_watching.set()
