"""The trust gate: a project's servers start only once the user approved them.

Project servers are those of the workspace's own files (``.mcp.json``, ``.vscode/mcp.json``,
``.cursor/mcp.json``); ``--config`` files and ``~/.mcp.json`` are the user's own and start at once.
Approvals are kept by fingerprint (``workdock.mcp.trust``) in ``$XDG_STATE_HOME/workdock/trust.json``
(mode 0600), so an approved entry is approved for every later run until it changes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from workdock.agent.token import state_dir
from workdock.mcp.config import Entry, HeldEntry, ServerSpec

TRUST_ENV = "WORKDOCK_TRUST"
MAX_APPROVALS = 10_000  # the oldest are forgotten beyond this: the file stays small


def trust_all_from_env() -> bool:
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def default_store_path() -> Path:
    return state_dir() / "trust.json"


class TrustStore:
    """Approved fingerprints, read from and written to one file (atomically, mode 0600)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_store_path()

    def _read(self) -> dict[str, Any]:
        try:
            data = orjson.loads(self.path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return {}
        approved = data.get("approved") if isinstance(data, dict) else None
        return approved if isinstance(approved, dict) else {}

    def approved(self) -> set[str]:
        return set(self._read())

    def approve(self, entries: Iterable[Entry]) -> list[str]:
        """Record each entry's fingerprint; returns the names approved."""
        approved = self._read()
        names = []
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for entry in entries:
            if entry.origin is None:
                continue
            approved[entry.origin.fingerprint] = {
                "server": entry.name,
                "file": entry.config_file,
                "approved_at": now,
            }
            names.append(entry.name)
        if len(approved) > MAX_APPROVALS:
            approved = dict(
                sorted(approved.items(), key=lambda kv: str(kv[1].get("approved_at")))[-MAX_APPROVALS:]
            )
        self._write({"version": 1, "approved": approved})
        return names

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # mkstemp makes the file 0600 from the start; the rename makes the update atomic.
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".trust-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(orjson.dumps(data, option=orjson.OPT_INDENT_2))
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise


def needs_approval(entry: Entry, project_files: Collection[str], approved: Collection[str]) -> bool:
    """A project's entry that would start (or wait for input) and whose fingerprint is not approved."""
    if entry.config_file not in project_files or entry.origin is None:
        return False
    if isinstance(entry, ServerSpec):
        startable = not entry.disabled
    else:
        startable = isinstance(entry, HeldEntry) and entry.state == "needs_input"
    return startable and entry.origin.fingerprint not in approved


def pending_message(name: str) -> str:
    return (
        f"not approved yet (a project server starts only once you approve it): run `workdock trust {name}`, "
        "or Approve it in the web UI (Workspaces)"
    )


def gate(entries: Sequence[Entry], project_files: Collection[str], approved: Collection[str]) -> list[Entry]:
    """``entries`` with every project entry not approved held as ``pending_approval``."""
    result: list[Entry] = []
    for entry in entries:
        if needs_approval(entry, project_files, approved):
            entry = HeldEntry(
                name=entry.name,
                state="pending_approval",
                message=pending_message(entry.name),
                transport=entry.transport,
                inputs=entry.inputs if isinstance(entry, HeldEntry) else (),
                config_file=entry.config_file,
                warnings=entry.warnings,
                origin=entry.origin,
            )
        result.append(entry)
    return result
