"""`.mcp.json` (Claude Code's format) → server specs.

Each file is parsed on its own and each entry is validated on its own: a bad
entry becomes an :class:`InvalidEntry` (reported as a ``failed`` server), never
a rejected file; a file that is not JSON contributes nothing and is reported
with its line and column.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

Transport = Literal["stdio", "http", "sse"]

_TYPE_ALIASES: dict[str, Transport] = {
    "stdio": "stdio",
    "http": "http",
    "streamable-http": "http",
    "streamableHttp": "http",
    "sse": "sse",
}
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# ${VAR} or ${VAR:-default}; a bare $VAR is left alone, as the spec asks.
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class OAuthSettings:
    """A pre-registered OAuth client (``oauth`` in an http/sse entry, as Claude Code and VS Code take it).

    Without it a server that asks for sign-in gets a client registered dynamically (RFC 7591).
    """

    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ()
    callback_port: int | None = None


@dataclass(frozen=True)
class ServerSpec:
    """One server to run or dial, with every ``${VAR}`` already expanded."""

    name: str
    transport: Transport
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] | None = None
    oauth: OAuthSettings | None = None
    timeout_ms: int | None = None
    disabled: bool = False
    # Where it was declared: reported in status, not part of what makes two specs "the same server".
    config_file: str | None = field(default=None, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class InvalidEntry:
    """An entry that cannot become a server: shown as ``failed`` with ``error``."""

    name: str
    error: str
    transport: Transport | None = None
    config_file: str | None = field(default=None, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)


Entry = ServerSpec | InvalidEntry


@dataclass(frozen=True)
class ConfigFile:
    path: str
    state: Literal["loaded", "missing", "invalid"]
    error: str | None = None
    # What the user should know that did not stop the file: servers under a key we do not read.
    warnings: tuple[str, ...] = ()
    # An invalid file that was valid before keeps its last good servers running: their names.
    kept: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadedConfig:
    entries: tuple[Entry, ...]
    files: tuple[ConfigFile, ...]
    # Each file's entries as last parsed from a valid version (for the next load to fall back on).
    last_good: Mapping[str, tuple[Entry, ...]] = field(default_factory=dict)


def kept_note(kept: Sequence[str]) -> str:
    """What an invalid file still contributes, said the same way in the log, status and UI."""
    if kept:
        return f"its last good servers keep running ({', '.join(kept)})"
    return "it declares no servers until it is fixed"


class _MissingVariable(Exception):
    pass


def name_error(name: str) -> str | None:
    """Why ``name`` cannot be a server name, or ``None`` when it can."""
    if not _NAME.match(name):
        return "server names are 1 to 64 characters of A-Z a-z 0-9 _ -"
    if "__" in name:
        return "server names may not contain '__' (it separates server and tool in tool names)"
    if name.startswith("_") or name.endswith("_"):
        return "server names may not start or end with '_'"
    return None


def expand(value: str, environ: Mapping[str, str]) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}``; ``:-`` applies to unset *and* empty, as in the shell."""

    def replace(match: re.Match[str]) -> str:
        variable, default = match.group(1), match.group(2)
        current = environ.get(variable)
        if default is not None:
            return current if current else default
        if current is None:
            raise _MissingVariable(variable)
        return current

    return _VARIABLE.sub(replace, value)


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"'{what}' must be a list of strings")
    return value


def _string_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"'{what}' must be an object of string values")
    return value


def _timeout_ms(value: Any) -> int | None:
    """``timeout``: a positive whole number of milliseconds; ``30000.0`` is one (JSON writers emit it)."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"'timeout' must be a positive whole number of milliseconds, not {value!r}")
    return value


def _oauth(value: Any, environ: Mapping[str, str]) -> OAuthSettings | None:
    """``oauth: {"clientId", "clientSecret"?, "scopes"?, "callbackPort"?}``; scopes as a list or a string."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("'oauth' must be an object")
    client_id = value.get("clientId")
    secret = value.get("clientSecret")
    for what, item in (("clientId", client_id), ("clientSecret", secret)):
        if item is not None and (not isinstance(item, str) or not item):
            raise ValueError(f"'oauth.{what}' must be a non-empty string")
    if secret is not None and client_id is None:
        raise ValueError("'oauth.clientSecret' needs 'oauth.clientId'")
    scopes = value.get("scopes", [])
    if isinstance(scopes, str):
        scopes = scopes.split()
    scopes = _strings(scopes, "oauth.scopes")
    port = value.get("callbackPort")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        raise ValueError(f"'oauth.callbackPort' must be a port number, not {port!r}")
    return OAuthSettings(
        client_id=expand(client_id, environ) if client_id else None,
        client_secret=expand(secret, environ) if secret else None,
        scopes=tuple(scopes),
        callback_port=port,
    )


def _transport_of(raw: Mapping[str, Any]) -> Transport:
    declared = raw.get("type")
    if declared is not None:
        if not isinstance(declared, str) or declared not in _TYPE_ALIASES:
            raise ValueError(f"unknown type {declared!r} (expected stdio, http or sse)")
        return _TYPE_ALIASES[declared]
    if "command" in raw:
        return "stdio"
    if "url" in raw:
        return "http"
    raise ValueError("needs 'command' (stdio) or 'url' (http/sse)")


def parse_entry(name: str, raw: Any, environ: Mapping[str, str], config_file: str | None = None) -> Entry:
    """Validate and expand one ``mcpServers`` entry; never raises."""
    if (problem := name_error(name)) is not None:
        return InvalidEntry(name=name, error=f"invalid server name: {problem}", config_file=config_file)
    if not isinstance(raw, dict):
        return InvalidEntry(name=name, error="entry must be a JSON object", config_file=config_file)
    transport: Transport | None = None
    try:
        transport = _transport_of(raw)
        timeout = _timeout_ms(raw.get("timeout"))
        disabled = raw.get("disabled", False)
        if not isinstance(disabled, bool):
            raise ValueError("'disabled' must be true or false")
        common = dict(
            name=name, transport=transport, timeout_ms=timeout, disabled=disabled, config_file=config_file
        )
        if transport == "stdio":
            command = raw.get("command")
            if not isinstance(command, str) or not command:
                raise ValueError("stdio servers need a non-empty 'command'")
            args = _strings(raw.get("args", []), "args")
            env = _string_map(raw.get("env", {}), "env")
            cwd = raw.get("cwd")
            if cwd is not None and not isinstance(cwd, str):
                raise ValueError("'cwd' must be a string")
            return ServerSpec(
                command=expand(command, environ),
                args=tuple(expand(a, environ) for a in args),
                env={k: expand(v, environ) for k, v in env.items()} or None,
                cwd=cwd,
                **common,  # type: ignore[arg-type]
            )
        url = raw.get("url")
        if not isinstance(url, str) or not url:
            raise ValueError(f"{transport} servers need a non-empty 'url'")
        headers = _string_map(raw.get("headers", {}), "headers")
        expanded_url = expand(url, environ)
        if not expanded_url.startswith(("http://", "https://")):
            raise ValueError("'url' must start with http:// or https://")
        return ServerSpec(
            url=expanded_url,
            headers={k: expand(v, environ) for k, v in headers.items()} or None,
            oauth=_oauth(raw.get("oauth"), environ),
            **common,  # type: ignore[arg-type]
        )
    except _MissingVariable as missing:
        error = (
            f"environment variable {missing.args[0]} is not set (and has no ${{{missing.args[0]}:-default}})"
        )
        return InvalidEntry(name=name, error=error, transport=transport, config_file=config_file)
    except ValueError as exc:
        return InvalidEntry(name=name, error=str(exc), transport=transport, config_file=config_file)


def _read_file(path: Path, environ: Mapping[str, str]) -> tuple[ConfigFile, list[Entry]]:
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ConfigFile(shown, "missing"), []
    except (OSError, UnicodeDecodeError) as exc:
        return ConfigFile(shown, "invalid", f"cannot read: {exc}"), []
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        return ConfigFile(shown, "invalid", f"line {exc.lineno}, column {exc.colno}: {exc.msg}"), []
    if not isinstance(document, dict):
        return ConfigFile(shown, "invalid", "the top level must be a JSON object"), []
    servers = document.get("mcpServers", {})
    if not isinstance(servers, dict):
        return ConfigFile(shown, "invalid", "'mcpServers' must be an object"), []
    status = ConfigFile(shown, "loaded", warnings=tuple(_unread_servers(document)))
    return status, [parse_entry(n, raw, environ, shown) for n, raw in servers.items()]


def _unread_servers(document: Mapping[str, Any]) -> list[str]:
    """A warning for each key other than ``mcpServers`` that holds server entries (VS Code's ``servers``,
    ``mcp.servers`` in its settings, Zed's ``context_servers``): they are not read, and the file would
    otherwise look loaded with nothing in it."""
    found: list[tuple[str, int]] = []
    for key, value in document.items():
        if key == "mcpServers" or not isinstance(value, dict):
            continue
        if count := _server_like(value):
            found.append((key, count))
        for inner, nested in value.items():
            if isinstance(nested, dict) and inner != "mcpServers" and (count := _server_like(nested)):
                found.append((f"{key}.{inner}", count))
    return [
        f"'{key}' holds {count} server{'s' if count != 1 else ''}, which {'are' if count != 1 else 'is'} "
        "not read: only 'mcpServers' is"
        for key, count in found
    ]


def _server_like(value: Mapping[str, Any]) -> int:
    """How many values of ``value`` look like server entries (objects with a command or a url)."""
    return sum(
        1 for entry in value.values() if isinstance(entry, dict) and ("command" in entry or "url" in entry)
    )


def config_paths(workspace: Path, extra: Sequence[Path] = (), user_config: bool = False) -> list[Path]:
    """The files read, in precedence order: ``--config`` files, the workspace's, then the user's."""
    paths = [p if p.is_absolute() else (Path.cwd() / p) for p in extra]
    paths.append(workspace / ".mcp.json")
    if user_config:
        paths.append(Path.home() / ".mcp.json")
    return [p.resolve() for p in paths]


def load(
    paths: Sequence[Path],
    environ: Mapping[str, str] | None = None,
    previous: LoadedConfig | None = None,
) -> LoadedConfig:
    """Read every file; the first declaration of a name wins, later ones become warnings on it.

    A file that turns invalid (a typo while editing) keeps the entries of its last valid version
    from ``previous``, so its servers and their state live on; a file never valid gives nothing.
    """
    environ = os.environ if environ is None else environ
    files: list[ConfigFile] = []
    chosen: dict[str, Entry] = {}
    ignored: dict[str, list[str]] = {}
    last_good: dict[str, tuple[Entry, ...]] = {}
    for path in paths:
        status, entries = _read_file(path, environ)
        if status.state == "loaded":
            last_good[status.path] = tuple(entries)
        elif status.state == "invalid" and previous is not None and status.path in previous.last_good:
            kept = previous.last_good[status.path]
            last_good[status.path] = kept
            entries = list(kept)
            status = replace(status, kept=tuple(e.name for e in kept))
        files.append(status)
        for entry in entries:
            if entry.name in chosen:
                ignored.setdefault(entry.name, []).append(f"also declared in {status.path} (ignored)")
            else:
                chosen[entry.name] = entry
    result: list[Entry] = []
    for name, entry in chosen.items():
        if name in ignored:
            entry = _with_warnings(entry, tuple(ignored[name]))
        result.append(entry)
    return LoadedConfig(entries=tuple(result), files=tuple(files), last_good=last_good)


def _with_warnings(entry: Entry, warnings: tuple[str, ...]) -> Entry:
    return replace(entry, warnings=entry.warnings + warnings)
