"""The config file formats read, and what differs between them.

- Claude Code's ``.mcp.json`` and Cursor's ``.cursor/mcp.json``: strict JSON, servers under
  ``mcpServers``.
- VS Code's ``.vscode/mcp.json``: JSONC (comments, trailing commas), servers under ``servers``,
  prompts for values under ``inputs``, and per-server ``envFile``, ``dev`` and ``gallery``.

A file is VS Code's when it is named ``mcp.json`` inside a ``.vscode`` directory; every other file is
read as Claude Code's. The variables (``${env:VAR}``, ``${workspaceFolder}``, ``${input:ID}``, ...)
are the same in every file (``workdock.mcp.config.expand``).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import json5
from dotenv import dotenv_values

Kind = Literal["claude", "vscode"]

MAX_CONFIG_BYTES = 1024 * 1024  # a config file, or an envFile, larger than this is refused
_JSON5_ERROR = re.compile(r"^<string>:(\d+) (.*) at column (\d+)$", re.DOTALL)


class ParseError(Exception):
    """A file that is not valid JSON (or JSONC); the message starts with its line and column."""


def kind_of(path: Path) -> Kind:
    return "vscode" if path.name == "mcp.json" and path.parent.name == ".vscode" else "claude"


def servers_key(kind: Kind) -> str:
    return "servers" if kind == "vscode" else "mcpServers"


def parse(text: str, kind: Kind) -> Any:
    if kind == "claude":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParseError(f"line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    try:
        return json5.loads(text)
    except ValueError as exc:
        # json5 says "<string>:3 Unexpected ... at column 2": said here the way strict JSON's errors are.
        message = str(exc)
        if match := _JSON5_ERROR.match(message):
            line, what, column = match.groups()
            message = f"line {line}, column {column}: {what}"
        raise ParseError(message) from None


def input_prompts(raw: Any) -> tuple[dict[str, Any], list[str]]:
    """VS Code's ``inputs`` (``promptString`` and ``pickString`` items) by id, and warnings for
    what is not read."""
    from workdock.mcp.config import InputPrompt

    prompts: dict[str, Any] = {}
    warnings: list[str] = []
    if raw is None:
        return prompts, warnings
    if not isinstance(raw, list):
        return prompts, ["'inputs' must be a list; it is ignored"]
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            warnings.append("an 'inputs' item without a string 'id' is ignored")
            continue
        kind = item.get("type", "promptString")
        options: tuple[str, ...] = ()
        if kind == "pickString":
            options = _pick_options(item.get("options"))
            if not options:
                warnings.append(
                    f"pickString input {item['id']!r} has no usable 'options'; it is asked as text"
                )
        elif kind != "promptString":
            # A command input runs an editor extension's command, which there is none of here.
            warnings.append(f"input {item['id']!r} of type {kind!r} is asked as text")
        description, default = item.get("description"), item.get("default")
        if options and default not in options:
            default = None
        prompts[item["id"]] = InputPrompt(
            id=item["id"],
            description=description if isinstance(description, str) else "",
            password=item.get("password") is True and not options,
            options=options,
            default=default if isinstance(default, str) else None,
        )
    return prompts, warnings


def _pick_options(raw: Any) -> tuple[str, ...]:
    """A pickString's choices: strings, or ``{"label", "value"}`` items (the value is what counts)."""
    if not isinstance(raw, list):
        return ()
    values = (item.get("value") if isinstance(item, dict) else item for item in raw)
    return tuple(dict.fromkeys(v for v in values if isinstance(v, str)))


def entry_warnings(raw: Mapping[str, Any]) -> list[str]:
    """VS Code's fields that do not map onto ours and change what a user would expect."""
    warnings = []
    if "dev" in raw:
        warnings.append("'dev' (VS Code's watch and debug mode) is ignored: the server runs as declared")
    # "gallery", "version" and the like are metadata: ignored without a word.
    return warnings


def read_workspace_file(path: str, workspace: Path | None, limit: int, what: str) -> bytes:
    """A file an entry names (``what``: its field), relative to the workspace, of at most ``limit``
    bytes; a ValueError that names it otherwise."""
    file = Path(path).expanduser()
    if not file.is_absolute() and workspace is not None:
        file = workspace / file
    try:
        with file.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {what} {file}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ValueError(f"{what} {file} is larger than {limit} bytes")
    return data


def read_env_file(path: str, workspace: Path | None) -> dict[str, str]:
    """A dotenv file (``KEY=value`` lines, ``#`` comments, quotes, ``export``) relative to the workspace."""
    data = read_workspace_file(path, workspace, MAX_CONFIG_BYTES, "envFile")
    values = dotenv_values(stream=io.StringIO(data.decode("utf-8", errors="replace")))
    return {key: value or "" for key, value in values.items()}


def unread_servers(document: Mapping[str, Any], key: str) -> list[str]:
    """A warning for each key other than ``key`` that holds server entries (``mcp.servers`` in VS
    Code's settings, Zed's ``context_servers``): they are not read, and the file would otherwise
    look loaded with nothing in it."""
    found: list[tuple[str, int]] = []
    for name, value in document.items():
        if name == key or not isinstance(value, dict):
            continue
        if count := _server_like(value):
            found.append((name, count))
        for inner, nested in value.items():
            if isinstance(nested, dict) and inner != key and (count := _server_like(nested)):
                found.append((f"{name}.{inner}", count))
    return [
        f"'{name}' holds {count} server{'s' if count != 1 else ''}, which {'are' if count != 1 else 'is'} "
        f"not read: only '{key}' is"
        for name, count in found
    ]


def _server_like(value: Mapping[str, Any]) -> int:
    """How many values of ``value`` look like server entries (objects with a command or a url)."""
    return sum(
        1 for entry in value.values() if isinstance(entry, dict) and ("command" in entry or "url" in entry)
    )
