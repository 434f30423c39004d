"""The agent's state: its settings, the config files it read, and the hub they feed."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from watchfiles import Change, awatch

from workdock.agent.child_env import Withheld, workspace_env
from workdock.agent.token import state_dir
from workdock.http_limits import size_from_env
from workdock.mcp import config
from workdock.mcp.hub import Hub
from workdock.mcp.limits import DEFAULT_MAX_RESULT_BYTES
from workdock.ratelimit import RateLimitSettings

logger = logging.getLogger(__name__)

# Config edits are applied within about a second: short debounce, quick polling of the event queue.
WATCH_DEBOUNCE_MS = 150
WATCH_STEP_MS = 30

MAX_REQUEST_BYTES_ENV = "WORKDOCK_AGENT_MAX_REQUEST_BYTES"
# fs/write carries a whole file in its body: large, but bounded.
DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024


def max_request_bytes_from_env() -> int:
    return size_from_env(MAX_REQUEST_BYTES_ENV, DEFAULT_MAX_REQUEST_BYTES)


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
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES
    # What the workspace's children must not see besides the agent token (`workdock up`: the chat
    # server's own settings and secrets).
    withheld_env: Withheld | None = None
    # OAuth sign-ins are kept (sealed) under here, with the key that seals them.
    state_dir: Path = field(default_factory=state_dir)

    @property
    def config_paths(self) -> list[Path]:
        return config.config_paths(self.workspace, self.config_files, self.user_config)

    def child_env(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a stdio server or a command (see ``child_env``)."""
        return workspace_env(overrides, withheld=self.withheld_env)


@dataclass
class AgentRuntime:
    settings: AgentSettings
    hub: Hub
    config_files: tuple[config.ConfigFile, ...] = ()
    _loaded: config.LoadedConfig | None = None
    _reload_lock: anyio.Lock = field(default_factory=anyio.Lock)
    # watchfiles waits in a thread that cancellation cannot interrupt; this event ends it at once.
    _stop_watching: anyio.Event = field(default_factory=anyio.Event)

    async def reload(self) -> None:
        """Re-read every config file and apply the result; only changed servers are touched."""
        async with self._reload_lock:
            # ${VAR} expands from what a child would see: a config cannot pass on what is withheld.
            loaded = config.load(self.settings.config_paths, self.settings.child_env(), previous=self._loaded)
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
            await self.hub.apply(loaded.entries)

    async def watch_config(self) -> None:
        """Apply edits, newly created files and atomic rewrites of the config files as they happen."""
        paths = self.settings.config_paths
        wanted = {str(p) for p in paths}
        directories = sorted({str(p.parent) for p in paths if p.parent.is_dir()})
        if not directories:
            return

        def relevant(_change: Change, path: str) -> bool:
            return path in wanted

        # Watching the directories (not the files) sees files that appear later and renames over them;
        # not recursively, so a large workspace costs nothing.
        async for _changes in awatch(
            *directories,
            watch_filter=relevant,
            recursive=False,
            debounce=WATCH_DEBOUNCE_MS,
            step=WATCH_STEP_MS,
            stop_event=self._stop_watching,
        ):
            logger.info("config changed; reloading")
            await self.reload()

    def stop_watching(self) -> None:
        self._stop_watching.set()
