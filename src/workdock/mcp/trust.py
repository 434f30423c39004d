"""What the user approves of a project's server: its fingerprint, and the line shown for it.

A checkout's config file is code from whoever wrote the repository: it starts commands. So a
project's server starts only once the user approved *this* entry, identified by a SHA-256 over
what the file says it runs:

- the server's name and the file it is in;
- ``type``, ``command``, ``args``, ``cwd``, ``url``, ``envFile`` and ``headersHelper`` as written,
  with the workspace paths (``${workspaceFolder}``, ``${userHome}``, ``${CLAUDE_PROJECT_DIR}``)
  expanded and every other variable (``${VAR}``, ``${env:VAR}``, ``${input:ID}``) left as written;
- the names of ``env`` entries, with the values of those whose name does not look secret;
- the names of ``headers``, never their values.

So a changed command, argument, URL, or ``NODE_OPTIONS`` asks again; a rotated token (in the
environment, an input, or written into a secret-looking ``env`` entry or a header) does not.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from workdock.mcp.config import Expansion, Origin

_SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION|PAT$", re.IGNORECASE)
_PATH_VARIABLE = re.compile(r"\$\{([A-Za-z_]+)\}")
_HASHED = ("type", "command", "args", "cwd", "url", "envFile", "headersHelper")


def looks_secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def _paths_only(value: Any, context: Expansion) -> Any:
    """``value`` with the workspace path variables expanded and nothing else."""
    if isinstance(value, str):
        return _PATH_VARIABLE.sub(lambda m: context.path_value(m.group(1)) or m.group(0), value)
    if isinstance(value, list):
        return [_paths_only(v, context) for v in value]
    return value


def origin_of(name: str, raw: Mapping[str, Any], config_file: str | None, context: Expansion) -> Origin:
    from workdock.mcp.config import Origin

    said = {key: _paths_only(raw[key], context) for key in _HASHED if key in raw}
    env = _mapping(raw.get("env"))
    headers = _mapping(raw.get("headers"))
    material = {
        "name": name,
        "file": config_file,
        **said,
        "env": {k: (None if looks_secret(k) else v) for k, v in sorted(env.items())},
        "headers": sorted(headers),
    }
    fingerprint = hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return Origin(fingerprint=fingerprint, launch=_launch(said, env, headers))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _launch(said: Mapping[str, Any], env: Mapping[str, Any], headers: Mapping[str, Any]) -> str:
    """``command args`` or the URL, with the names (never the values) of its env or headers."""
    if isinstance(said.get("url"), str) and "command" not in said:
        line = str(said["url"])
        if headers:
            line += f" (headers: {', '.join(sorted(headers))})"
        if isinstance(said.get("headersHelper"), str):
            line += f" (headersHelper: {said['headersHelper']})"
        return line
    args = said.get("args")
    args = args if isinstance(args, list) else []
    parts = [str(said.get("command", "")), *(str(a) for a in args)]
    line = shlex.join(parts)
    if env:
        line += f" (env: {', '.join(sorted(env))})"
    return line
