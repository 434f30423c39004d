"""The agent's state: its settings, the config files it read, and the hub they feed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from watchfiles import Change, awatch

from workdock.mcp import config
from workdock.mcp.hub import Hub

logger = logging.getLogger(__name__)

# Config edits are applied within about a second: short debounce, quick polling of the event queue.
WATCH_DEBOUNCE_MS = 150
WATCH_STEP_MS = 30


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

    @property
    def config_paths(self) -> list[Path]:
        return config.config_paths(self.workspace, self.config_files, self.user_config)


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
            loaded = config.load(self.settings.config_paths, previous=self._loaded)
            previous = {f.path: f for f in self.config_files}
            for status in loaded.files:
                if status.state == "invalid" and previous.get(status.path) != status:
                    logger.error(
                        "config file %s is invalid: %s; %s",
                        status.path,
                        status.error,
                        config.kept_note(status.kept),
                    )
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
