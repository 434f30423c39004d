"""MCP config files → server specs: Claude Code's `.mcp.json`, VS Code's `.vscode/mcp.json`, Cursor's
`.cursor/mcp.json` (``workdock.mcp.formats`` says how each is read).

Each file is parsed on its own and each entry is validated on its own: a bad
entry becomes an :class:`InvalidEntry` (reported as a ``failed`` server), never
a rejected file; a file that is not JSON contributes nothing and is reported
with its line and column. An entry that needs a value only the user can give
(VS Code's ``${input:ID}``) becomes a :class:`HeldEntry` that names it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from mcp.client.auth.utils import is_valid_client_metadata_url

from workdock.mcp import formats

Transport = Literal["stdio", "http", "sse"]

_TYPE_ALIASES: dict[str, Transport] = {
    "stdio": "stdio",
    "http": "http",
    "streamable-http": "http",
    "streamableHttp": "http",
    "sse": "sse",
}
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# ${VAR} or ${VAR:-default}, and the editors' ${env:VAR} and ${input:ID}; a bare $VAR is left alone.
_VARIABLE = re.compile(r"\$\{(?:(env|input):([A-Za-z0-9_.-]+)|([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?)\}")
# Workspace paths, as VS Code and Claude Code name them; they are no secret (and are hashed for trust).
PATH_VARIABLES = (
    "workspaceFolder",
    "workspaceRoot",
    "workspaceFolderBasename",
    "userHome",
    "CLAUDE_PROJECT_DIR",
)
INPUT_ENV_PREFIX = "WORKDOCK_INPUT_"


Grant = Literal["authorization_code", "client_credentials"]
MAX_PRIVATE_KEY_BYTES = 64 * 1024
_SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


@dataclass(frozen=True)
class OAuthSettings:
    """A pre-registered OAuth client (``oauth`` in an http/sse entry, as Claude Code and VS Code take it).

    Without it a server that asks for sign-in gets a client registered dynamically (RFC 7591).
    With ``grant="client_credentials"`` the agent signs in as the client itself, with no person
    (a machine client: its secret, or a private key that signs a JWT assertion, RFC 7523).
    """

    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ()
    callback_port: int | None = None
    # Where the authorization server sends the code (the chat server's callback); None: the
    # loopback one at ``callback_port`` that `workdock auth` listens on.
    redirect_uri: str | None = None
    grant: Grant = "authorization_code"
    token_endpoint_auth: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"
    private_key: str | None = field(default=None, repr=False)  # PEM, for private_key_jwt
    signing_algorithm: str = "RS256"
    issuer: str | None = None  # the authorization server the client's credentials belong to
    # A URL-based client ID (a Client ID Metadata Document, SEP-991): used where the authorization
    # server supports it, instead of registering a client.
    client_metadata_url: str | None = None


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
    # http/sse: a command that prints headers as a JSON object, run before each connect and on a 401.
    headers_helper: str | None = None
    # Where it was declared: reported in status, not part of what makes two specs "the same server".
    config_file: str | None = field(default=None, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)
    # The entry as the file says it (see ``workdock.mcp.trust``): what the user approves.
    origin: Origin | None = field(default=None, compare=False)


@dataclass(frozen=True)
class InputPrompt:
    """A VS Code ``inputs`` item an entry uses: its value comes from the user."""

    id: str
    description: str = ""
    password: bool = False
    options: tuple[str, ...] = ()  # a pickString's choices: the value must be one of them
    default: str | None = None

    @property
    def env_name(self) -> str:
        """``WORKDOCK_INPUT_<ID>``: the ID upper-cased, anything but letters and digits as ``_``."""
        return INPUT_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", self.id).upper()


@dataclass(frozen=True)
class Origin:
    """What an entry says, for the trust gate: shown to the user, and hashed for the approval."""

    fingerprint: str
    launch: str  # the command line or URL, variables as written: never a secret's value


@dataclass(frozen=True)
class HeldEntry:
    """A valid entry that may not start yet: ``needs_input`` (a value only the user can give) or
    ``pending_approval`` (a project's server the user has not approved)."""

    name: str
    state: Literal["needs_input", "pending_approval"]
    message: str  # what the user must do
    transport: Transport | None = None
    inputs: tuple[InputPrompt, ...] = ()
    config_file: str | None = field(default=None, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)
    origin: Origin | None = field(default=None, compare=False)


@dataclass(frozen=True)
class InvalidEntry:
    """An entry that cannot become a server: shown as ``failed`` with ``error``."""

    name: str
    error: str
    transport: Transport | None = None
    config_file: str | None = field(default=None, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)
    origin: Origin | None = field(default=None, compare=False)


Entry = ServerSpec | InvalidEntry | HeldEntry


@dataclass(frozen=True)
class Expansion:
    """What ``${...}`` expands from: the environment, the workspace's paths, and the inputs given."""

    environ: Mapping[str, str]
    workspace: Path | None = None
    inputs: Mapping[str, str] = field(default_factory=dict)
    prompts: Mapping[str, InputPrompt] = field(default_factory=dict)  # the file's ``inputs``

    def path_value(self, name: str) -> str | None:
        """The workspace paths, as VS Code and Claude Code name them: no secret (and hashed for trust)."""
        if self.workspace is None:
            return None
        return {
            "workspaceFolder": str(self.workspace),
            "workspaceRoot": str(self.workspace),
            "workspaceFolderBasename": self.workspace.name,
            "userHome": str(Path.home()),
            "CLAUDE_PROJECT_DIR": str(self.workspace),
        }.get(name)

    def input_value(self, input_id: str) -> str | None:
        """Given through the API (or the UI), else ``WORKDOCK_INPUT_<ID>`` from the agent's environment."""
        if input_id in self.inputs:
            return self.inputs[input_id]
        return os.environ.get(self.prompt(input_id).env_name)

    def prompt(self, input_id: str) -> InputPrompt:
        return self.prompts.get(input_id) or InputPrompt(input_id)


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


class _MissingInputs(Exception):
    def __init__(self, inputs: list[InputPrompt]) -> None:
        super().__init__(", ".join(i.id for i in inputs))
        self.inputs = inputs


def name_error(name: str) -> str | None:
    """Why ``name`` cannot be a server name, or ``None`` when it can."""
    if not _NAME.match(name):
        return "server names are 1 to 64 characters of A-Z a-z 0-9 _ -"
    if "__" in name:
        return "server names may not contain '__' (it separates server and tool in tool names)"
    if name.startswith("_") or name.endswith("_"):
        return "server names may not start or end with '_'"
    return None


def expand(
    value: str, environ: Mapping[str, str] | Expansion, missing: list[InputPrompt] | None = None
) -> str:
    """Expand ``${VAR}``, ``${VAR:-default}`` (``:-`` applies to unset *and* empty, as in the shell),
    ``${env:VAR}``, the workspace paths and ``${input:ID}``. An unset variable raises; an input with
    no value is added to ``missing`` (and expands to nothing) when that list is given, else raises."""
    context = environ if isinstance(environ, Expansion) else Expansion(environ)

    def replace(match: re.Match[str]) -> str:
        kind, key, variable, default = match.groups()
        if kind == "input":
            given = context.input_value(key)
            if given is not None:
                options = context.prompt(key).options
                if options and given not in options:
                    raise ValueError(f"input {key!r} is {given!r}, which is not one of: {', '.join(options)}")
                return given
            if missing is None:
                raise _MissingInputs([context.prompt(key)])
            missing.append(context.prompt(key))
            return ""
        if kind == "env":
            variable = key
        elif (path := context.path_value(variable)) is not None:
            return path
        current = context.environ.get(variable)
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


def _oauth(value: Any, sub: Callable[[str], str], workspace: Path | None = None) -> OAuthSettings | None:
    """``oauth: {"clientId", "clientSecret"?, "scopes"?, "callbackPort"?}``; scopes as a list or a
    string. A machine client adds ``"grantType": "client_credentials"`` (with ``clientSecret``, or
    ``privateKey``/``privateKeyFile`` and ``signingAlgorithm``), and ``issuer``."""
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
    metadata_url = value.get("clientMetadataUrl")
    if metadata_url is not None:
        if not isinstance(metadata_url, str) or not is_valid_client_metadata_url(sub(metadata_url)):
            raise ValueError("'oauth.clientMetadataUrl' must be an https URL with a path (not just a host)")
        if client_id is not None:
            raise ValueError("'oauth.clientMetadataUrl' and 'oauth.clientId' exclude each other")
    settings = OAuthSettings(
        client_id=sub(client_id) if client_id else None,
        client_secret=sub(secret) if secret else None,
        scopes=tuple(scopes),
        callback_port=port,
        client_metadata_url=sub(metadata_url) if metadata_url else None,
    )
    return _machine_client(value, settings, sub, workspace)


def _machine_client(
    value: Mapping[str, Any], settings: OAuthSettings, sub: Callable[[str], str], workspace: Path | None
) -> OAuthSettings:
    """The client-credentials part of ``oauth`` (``grantType`` and what goes with it), checked."""
    grant = value.get("grantType", "authorization_code")
    if grant not in ("authorization_code", "client_credentials"):
        raise ValueError(f"'oauth.grantType' must be authorization_code or client_credentials, not {grant!r}")
    machine_keys = ("privateKey", "privateKeyFile", "signingAlgorithm", "tokenEndpointAuthMethod", "issuer")
    for key in machine_keys:
        item = value.get(key)
        if item is not None and (not isinstance(item, str) or not item):
            raise ValueError(f"'oauth.{key}' must be a non-empty string")
    if grant == "authorization_code":
        if given := [key for key in machine_keys if key in value]:
            raise ValueError(f'\'oauth.{given[0]}\' needs "grantType": "client_credentials"')
        return settings
    if settings.client_id is None:
        raise ValueError("'oauth.grantType' client_credentials needs 'oauth.clientId'")
    pem = _private_key(value, sub, workspace)
    if (pem is None) == (settings.client_secret is None):
        raise ValueError(
            "'oauth.grantType' client_credentials needs exactly one of 'oauth.clientSecret' and "
            "'oauth.privateKey' (or 'oauth.privateKeyFile')"
        )
    algorithm = value.get("signingAlgorithm", "RS256")
    if algorithm not in _SIGNING_ALGORITHMS:
        raise ValueError(f"'oauth.signingAlgorithm' must be one of {', '.join(_SIGNING_ALGORITHMS)}")
    method = value.get("tokenEndpointAuthMethod", "client_secret_basic")
    if method not in ("client_secret_basic", "client_secret_post") or (
        pem is not None and "tokenEndpointAuthMethod" in value
    ):
        raise ValueError(
            "'oauth.tokenEndpointAuthMethod' must be client_secret_basic or client_secret_post, "
            "with 'oauth.clientSecret' (a private key always signs a JWT assertion)"
        )
    issuer = value.get("issuer")
    return replace(
        settings,
        grant="client_credentials",
        token_endpoint_auth=method,
        private_key=pem,
        signing_algorithm=algorithm,
        issuer=sub(issuer) if issuer else None,
    )


def _private_key(value: Mapping[str, Any], sub: Callable[[str], str], workspace: Path | None) -> str | None:
    """The PEM of ``privateKey`` (usually ``${env:VAR}``) or of the file ``privateKeyFile`` names
    (relative to the workspace, like ``envFile``)."""
    inline, file = value.get("privateKey"), value.get("privateKeyFile")
    if inline is not None and file is not None:
        raise ValueError("'oauth.privateKey' and 'oauth.privateKeyFile' exclude each other")
    if inline is not None:
        return sub(inline)
    if file is None:
        return None
    data = formats.read_workspace_file(sub(file), workspace, MAX_PRIVATE_KEY_BYTES, "oauth.privateKeyFile")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ValueError(f"oauth.privateKeyFile {sub(file)} is not a PEM file") from None


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


def parse_entry(
    name: str,
    raw: Any,
    environ: Mapping[str, str] | Expansion,
    config_file: str | None = None,
) -> Entry:
    """Validate and expand one server entry; never raises."""
    context = environ if isinstance(environ, Expansion) else Expansion(environ)
    if (problem := name_error(name)) is not None:
        return InvalidEntry(name=name, error=f"invalid server name: {problem}", config_file=config_file)
    if not isinstance(raw, dict):
        return InvalidEntry(name=name, error="entry must be a JSON object", config_file=config_file)
    from workdock.mcp import trust  # the fingerprint of what the file says

    origin = trust.origin_of(name, raw, config_file, context)
    transport: Transport | None = None
    missing: list[InputPrompt] = []
    warnings = tuple(formats.entry_warnings(raw))

    def sub(value: str) -> str:
        return expand(value, context, missing)

    try:
        transport = _transport_of(raw)
        timeout = _timeout_ms(raw.get("timeout"))
        disabled = raw.get("disabled", False)
        if not isinstance(disabled, bool):
            raise ValueError("'disabled' must be true or false")
        common = dict(
            name=name,
            transport=transport,
            timeout_ms=timeout,
            disabled=disabled,
            config_file=config_file,
            warnings=warnings,
            origin=origin,
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
            env_file = raw.get("envFile")
            if env_file is not None and not isinstance(env_file, str):
                raise ValueError("'envFile' must be a string")
            # The entry's own env wins over its envFile, as in VS Code.
            merged = {
                **(formats.read_env_file(sub(env_file), context.workspace) if env_file else {}),
                **{k: sub(v) for k, v in env.items()},
            }
            spec: ServerSpec = ServerSpec(
                command=sub(command),
                args=tuple(sub(a) for a in args),
                env=merged or None,
                cwd=sub(cwd) if cwd is not None else None,
                **common,  # type: ignore[arg-type]
            )
        else:
            url = raw.get("url")
            if not isinstance(url, str) or not url:
                raise ValueError(f"{transport} servers need a non-empty 'url'")
            headers = _string_map(raw.get("headers", {}), "headers")
            helper = raw.get("headersHelper")
            if helper is not None and (not isinstance(helper, str) or not helper.strip()):
                raise ValueError("'headersHelper' must be a non-empty command")
            expanded_url = sub(url)
            if not missing and not expanded_url.startswith(("http://", "https://")):
                raise ValueError("'url' must start with http:// or https://")
            spec = ServerSpec(
                url=expanded_url,
                headers={k: sub(v) for k, v in headers.items()} or None,
                headers_helper=sub(helper) if helper else None,
                oauth=_oauth(raw.get("oauth"), sub, context.workspace),
                **common,  # type: ignore[arg-type]
            )
        if missing and not disabled:
            return _needs_input(spec, missing)
        return spec
    except _MissingVariable as missing_variable:
        variable = missing_variable.args[0]
        error = f"environment variable {variable} is not set (and has no ${{{variable}:-default}})"
        return InvalidEntry(
            name=name, error=error, transport=transport, config_file=config_file, warnings=warnings
        )
    except ValueError as exc:
        return InvalidEntry(
            name=name, error=str(exc), transport=transport, config_file=config_file, warnings=warnings
        )


def _needs_input(spec: ServerSpec, missing: list[InputPrompt]) -> HeldEntry:
    inputs = tuple({i.id: i for i in missing}.values())
    named = ", ".join(f"{i.id} (${i.env_name})" for i in inputs)
    message = f"needs input {named}: enter it in the web UI (Workspaces) or set the variable"
    return HeldEntry(
        name=spec.name,
        state="needs_input",
        message=message,
        transport=spec.transport,
        inputs=inputs,
        config_file=spec.config_file,
        warnings=spec.warnings,
        origin=spec.origin,
    )


def _read_file(
    path: Path, environ: Mapping[str, str], workspace: Path | None, inputs: Mapping[str, str]
) -> tuple[ConfigFile, list[Entry]]:
    shown = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(formats.MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return ConfigFile(shown, "missing"), []
    except OSError as exc:
        return ConfigFile(shown, "invalid", f"cannot read: {exc}"), []
    if len(data) > formats.MAX_CONFIG_BYTES:
        return ConfigFile(shown, "invalid", f"larger than {formats.MAX_CONFIG_BYTES} bytes"), []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ConfigFile(shown, "invalid", f"cannot read: {exc}"), []
    kind = formats.kind_of(path)
    try:
        document = formats.parse(text, kind)
    except formats.ParseError as exc:
        return ConfigFile(shown, "invalid", str(exc)), []
    if not isinstance(document, dict):
        return ConfigFile(shown, "invalid", "the top level must be a JSON object"), []
    key = formats.servers_key(kind)
    servers = document.get(key, {})
    if not isinstance(servers, dict):
        return ConfigFile(shown, "invalid", f"'{key}' must be an object"), []
    prompts, input_warnings = formats.input_prompts(document.get("inputs"))
    context = Expansion(environ, workspace=workspace, inputs=inputs, prompts=prompts)
    warnings = (*input_warnings, *formats.unread_servers(document, key))
    status = ConfigFile(shown, "loaded", warnings=tuple(warnings))
    return status, [parse_entry(n, raw, context, shown) for n, raw in servers.items()]


# The workspace's own files, in precedence order: the project scope, which the trust gate guards.
PROJECT_FILES = (".mcp.json", ".vscode/mcp.json", ".cursor/mcp.json")


def project_paths(workspace: Path) -> list[Path]:
    return [(workspace / name).resolve() for name in PROJECT_FILES]


def config_paths(workspace: Path, extra: Sequence[Path] = (), user_config: bool = False) -> list[Path]:
    """The files read, in precedence order: ``--config`` files, the workspace's (``.mcp.json``,
    ``.vscode/mcp.json``, ``.cursor/mcp.json``), then the user's."""
    paths = [(p if p.is_absolute() else (Path.cwd() / p)).resolve() for p in extra]
    paths.extend(project_paths(workspace))
    if user_config:
        paths.append((Path.home() / ".mcp.json").resolve())
    return paths


def load(
    paths: Sequence[Path],
    environ: Mapping[str, str] | None = None,
    previous: LoadedConfig | None = None,
    *,
    workspace: Path | None = None,
    inputs: Mapping[str, str] | None = None,
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
        status, entries = _read_file(path, environ, workspace, inputs or {})
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
