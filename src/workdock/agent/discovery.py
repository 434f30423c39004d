"""How the CLI finds an agent: its flags and environment first, then the agent a running
``workdock up`` recorded, then the default address and token file.

``up`` gives its agent a random port and a token of its own; it records both in
``$XDG_STATE_HOME/workdock/up.json`` (mode 0600) and removes the record when it stops. A record
whose process is gone (``up`` was killed) is stale and ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from workdock.agent.token import read_token, state_dir

URL_ENV = "WORKDOCK_AGENT_URL"
DEFAULT_URL = "http://127.0.0.1:4571"
RECORD_NAME = "up.json"


@dataclass(frozen=True)
class UpRecord:
    """What a running ``workdock up`` tells the CLI about itself."""

    pid: int
    workspace: str
    agent_url: str
    agent_token: str
    server_url: str


def record_path() -> Path:
    return state_dir() / RECORD_NAME


def write_record(record: UpRecord) -> Path:
    """Write the record readable by this user alone (it holds the agent's token)."""
    path = record_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".{path.name}.{record.pid}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(record), handle)
    os.replace(partial, path)  # a reader never sees half a record
    return path


def remove_record(pid: int) -> None:
    """Remove the record if it is still this process's (a later ``up`` may have replaced it)."""
    path = record_path()
    record = _load(path)
    if record is not None and record.pid == pid:
        path.unlink(missing_ok=True)


def _load(path: Path) -> UpRecord | None:
    try:
        raw = json.loads(path.read_text())
        return UpRecord(**{k: raw[k] for k in UpRecord.__dataclass_fields__})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable or from another version: as good as none


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_up() -> UpRecord | None:
    """The record of a ``workdock up`` that is still running, if there is one."""
    record = _load(record_path())
    return record if record is not None and _alive(record.pid) else None


@dataclass(frozen=True)
class Target:
    url: str
    token: str | None
    where: str  # where the URL came from, for messages


def find_agent(url: str | None, token_file: Path | None) -> Target:
    """The agent to talk to, in this order.

    URL: ``--agent``, else ``$WORKDOCK_AGENT_URL``, else the agent of a running ``workdock up``,
    else ``http://127.0.0.1:4571``. Token: ``$WORKDOCK_AGENT_TOKEN``, else ``--token-file``, else
    the recorded token when the URL is that ``up``'s agent, else the default token file.
    Raises ``FileNotFoundError`` for a ``--token-file`` that does not exist.
    """
    record = running_up()
    if url:
        where = "--agent"
    elif env_url := os.environ.get(URL_ENV, "").strip():
        url, where = env_url, f"${URL_ENV}"
    elif record is not None:
        url, where = record.agent_url, f"the running `workdock up` for {record.workspace}"
    else:
        url, where = DEFAULT_URL, "the default address"
    if os.environ.get("WORKDOCK_AGENT_TOKEN", "").strip() or token_file is not None:
        return Target(url, read_token(token_file), where)
    if record is not None and record.agent_url.rstrip("/") == url.rstrip("/"):
        return Target(url, record.agent_token, where)
    return Target(url, read_token(None), where)
