"""``workdock``: the command line (agent, its client commands, and the chat server's)."""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path
from typing import Annotated, Any, NoReturn

import anyio
import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from workdock import __version__, agentapi
from workdock.agent.discovery import DEFAULT_URL, URL_ENV, find_agent
from workdock.agent.token import TOKEN_ENV, agent_token, default_token_file, read_token
from workdock.listen import ListenError, bind, url_host
from workdock.listen import parse_listen as listen_address
from workdock.logs import setup_logging
from workdock.mcp.limits import DEFAULT_MAX_RESULT_BYTES, MAX_RESULT_ENV, MIN_RESULT_BYTES
from workdock.tables import prompts_table, resources_table, servers_table, tools_table

app = typer.Typer(
    name="workdock",
    help="Bring a workspace's own MCP servers (.mcp.json) into AI chat.",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode="rich",
)
out = Console(soft_wrap=True)  # never re-wrap tool output or paths
err = Console(stderr=True, soft_wrap=True)

DEFAULT_AGENT_LISTEN = "127.0.0.1:4571"


def parse_listen(value: str, default_port: int) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``HOST`` → (host, port)."""
    try:
        return listen_address(value, default_port)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def fail(message: str, hint: str | None = None) -> NoReturn:
    # Escaped: messages carry addresses ("[::1]:3000") and servers' words, never markup.
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    if hint:
        err.print(f"[dim]{escape(hint)}[/]", highlight=False)
    raise typer.Exit(1)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        out.print(f"workdock {__version__}")
        raise typer.Exit()


MaxResultBytes = Annotated[
    int,
    typer.Option(
        "--max-result-bytes",
        envvar=MAX_RESULT_ENV,
        min=MIN_RESULT_BYTES,
        help="The most bytes one message from an MCP server (a tool result) may take; a larger one "
        "is dropped and its call answered with a 502.",
    ),
]

TrustAll = Annotated[
    bool,
    typer.Option(
        "--trust",
        envvar="WORKDOCK_TRUST",
        help="Start the workspace's own (project) MCP servers without asking for approval: for "
        "provisioned workspaces whose config you control.",
    ),
]


def _ask_for_approval(settings: Any) -> None:
    """On a terminal, ask which pending project servers may start (the rest wait for `workdock trust`)."""
    import sys

    if settings.trust_all or not sys.stdin.isatty():
        return
    from workdock.agent.trust_prompt import ask_for_approval

    ask_for_approval(settings, err)


# ---- the agent -----------------------------------------------------------------------------------


# Options `workdock agent` and `workdock mcp` share: the workspace they serve, and how.
WatchConfig = Annotated[
    bool, typer.Option("--watch/--no-watch", help="Apply edits of the config files as they happen.")
]
ServersVerbose = Annotated[
    bool, typer.Option("--verbose", "-v", help="Log debug detail (and servers' stderr).")
]
WorkspaceDir = Annotated[
    Path,
    typer.Option(
        "--dir",
        help="The workspace directory (its .mcp.json is read).",
        exists=True,
        file_okay=False,
        resolve_path=True,
    ),
]


@app.command()
def agent(
    dir: WorkspaceDir = Path("."),
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="Dial this chat server (http(s)://HOST) and be reached through that link; "
            "no listening socket unless --listen is given too.",
        ),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            help=f"HOST:PORT to serve the API on (default {DEFAULT_AGENT_LISTEN} without --server)."
        ),
    ] = None,
    config: Annotated[
        list[Path] | None,
        typer.Option(
            "--config",
            help="Extra config file, read before the workspace's .mcp.json (repeatable; "
            "the first file declaring a server name wins).",
        ),
    ] = None,
    user_config: Annotated[bool, typer.Option(help="Also read ~/.mcp.json (after the others).")] = False,
    connect_timeout: Annotated[
        float, typer.Option(help="Seconds each server gets to connect.", min=0.1)
    ] = 30.0,
    token_file: Annotated[
        Path | None, typer.Option(help=f"File holding the API token (used when {TOKEN_ENV} is not set).")
    ] = None,
    workspace_ops: Annotated[
        bool,
        typer.Option(
            "--workspace-ops/--no-workspace-ops",
            help="Serve the file and command endpoints for the chat's built-in tools.",
        ),
    ] = True,
    watch: WatchConfig = True,
    max_result_bytes: MaxResultBytes = DEFAULT_MAX_RESULT_BYTES,
    trust: TrustAll = False,
    verbose: ServersVerbose = False,
) -> None:
    """Run the workspace agent: start every server in .mcp.json and serve their tools over HTTP.

    The token comes from $WORKDOCK_AGENT_TOKEN, else --token-file, else a new one is made and
    written to $XDG_STATE_HOME/workdock/agent.token (mode 0600). With --server the agent dials the
    chat server instead and needs the workspace's token (from its connect command); a token the
    server refuses ends the agent with exit status 2.
    """
    from workdock.agent.runtime import AgentSettings, max_mcp_sessions_from_env, max_request_bytes_from_env
    from workdock.agent.serve import serve_agent, serve_linked_agent
    from workdock.link.dialer import EXIT_REFUSED, LinkSettings, link_url
    from workdock.link.session import timings_from_env
    from workdock.ratelimit import RateLimitSettings

    setup_logging(verbose)
    host, port = parse_listen(listen or DEFAULT_AGENT_LISTEN, 4571)
    written: Path | None = None
    if server is not None:
        try:
            token = read_token(token_file) if token_file or os.environ.get(TOKEN_ENV) else None
        except FileNotFoundError:
            fail(f"token file {token_file} does not exist")
        if not token:
            err.print(
                f"[bold red]error:[/] --server needs the workspace's agent token: set {TOKEN_ENV} or pass "
                "--token-file (the chat server shows both when the workspace is added)"
            )
            raise typer.Exit(EXIT_REFUSED)
        try:
            url = link_url(server)
            ping_interval, silence_limit = timings_from_env()
        except ValueError as exc:
            fail(str(exc))
    else:
        try:
            token, written = agent_token(token_file)
        except FileNotFoundError:
            fail(f"token file {token_file} does not exist")
    try:
        auth_failures, max_request_bytes = RateLimitSettings.from_env(), max_request_bytes_from_env()
        max_mcp_sessions = max_mcp_sessions_from_env()
    except ValueError as exc:
        fail(str(exc))
    sock = None
    if server is None or listen is not None:  # bound now: a taken address is one clear line
        try:
            sock = bind(host, port, what="workdock agent")
        except ListenError as exc:
            fail(str(exc))
        port = sock.getsockname()[1]
    settings = AgentSettings(
        auth_failures=auth_failures,
        max_request_bytes=max_request_bytes,
        max_mcp_sessions=max_mcp_sessions,
        workspace=dir,
        token=token,
        host=host,
        port=port,
        config_files=tuple(config or ()),
        user_config=user_config,
        connect_timeout=connect_timeout,
        workspace_ops=workspace_ops,
        watch=watch,
        max_result_bytes=max_result_bytes,
        trust_all=trust,
    )
    _ask_for_approval(settings)
    # The banner first: every server's state follows it, one line per change.
    if server is None:
        err.print(f"workdock agent for {dir} on http://{url_host(host)}:{port}", highlight=False)
    else:
        where = f" and on http://{url_host(host)}:{port}" if sock else " (no listening socket)"
        err.print(f"workdock agent for {dir}, linked to {url}{where}", highlight=False)
    if written:
        err.print(f"agent token written to {written}", highlight=False)
    # uvloop (from uvicorn[standard]) makes the proxy's socket and pipe I/O markedly cheaper.
    if server is None:
        anyio.run(partial(serve_agent, settings, sock=sock), backend_options={"use_uvloop": True})
        return
    link = LinkSettings(server, token, ping_interval=ping_interval, silence_limit=silence_limit)

    async def run() -> int:
        return await serve_linked_agent(settings, link, sock=sock)

    status = anyio.run(run, backend_options={"use_uvloop": True})
    if status:
        raise typer.Exit(status)


@app.command("mcp")
def mcp_stdio(
    dir: WorkspaceDir = Path("."),
    only: Annotated[
        str | None,
        typer.Option(
            "--only", help="Serve this one server's tools, resources and prompts under their own names."
        ),
    ] = None,
    config: Annotated[
        list[Path] | None,
        typer.Option(
            "--config", help="Extra config file, read before the workspace's .mcp.json (repeatable)."
        ),
    ] = None,
    user_config: Annotated[bool, typer.Option(help="Also read ~/.mcp.json (after the others).")] = False,
    connect_timeout: Annotated[
        float, typer.Option(help="Seconds each server gets to connect.", min=0.1)
    ] = 30.0,
    watch: WatchConfig = True,
    max_result_bytes: MaxResultBytes = DEFAULT_MAX_RESULT_BYTES,
    trust: TrustAll = False,
    verbose: ServersVerbose = False,
) -> None:
    """Serve the workspace's MCP servers as one MCP server over stdio (for Claude Code, Cursor, VS Code).

    Tools are offered as server__tool (with --only SERVER: that server's own names). stdout is
    the protocol; logs go to stderr. Project servers start once approved (workdock trust, or
    --trust): stdin is the protocol, so nothing is asked here.
    """
    import secrets

    from workdock.agent.mcp_stdio import serve_stdio
    from workdock.agent.runtime import AgentSettings

    setup_logging(verbose)
    settings = AgentSettings(
        workspace=dir,
        token=secrets.token_urlsafe(32),  # no HTTP API in this process: nothing takes a token
        config_files=tuple(config or ()),
        user_config=user_config,
        connect_timeout=connect_timeout,
        workspace_ops=False,
        watch=watch,
        max_result_bytes=max_result_bytes,
        trust_all=trust,
    )
    anyio.run(partial(serve_stdio, settings, only), backend_options={"use_uvloop": True})


# ---- client commands -----------------------------------------------------------------------------

AgentUrl = Annotated[
    str | None,
    typer.Option(
        "--agent",
        help=f"The agent's base URL (else ${URL_ENV}, else the agent of a running `workdock up`, "
        f"else {DEFAULT_URL}).",
        show_default=False,
    ),
]
TokenFile = Annotated[
    Path | None,
    typer.Option(
        help=f"File holding the agent token (used when ${TOKEN_ENV} is not set; else the running "
        "`workdock up`'s token for its agent, else the agent's default token file)."
    ),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the raw JSON response.")]


def _with_agent(url: str | None, token_file: Path | None, work: Any) -> Any:
    try:
        target = find_agent(url, token_file)
    except FileNotFoundError:
        fail(f"token file {token_file} does not exist")
    if not target.token:
        fail(
            "no agent token",
            f"set {TOKEN_ENV}, pass --token-file, run `workdock up`, or start `workdock agent` once so "
            f"it writes {default_token_file()}",
        )

    async def run() -> Any:
        async with agentapi.AgentClient(target.url, target.token or "") as client:
            return await work(client)

    try:
        return anyio.run(run)
    except agentapi.AgentError as exc:
        hint = f"is an agent running there? (the URL came from {target.where})" if exc.status == 0 else None
        fail(str(exc), hint)


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


@app.command()
def tools(
    agent: AgentUrl = None,
    token_file: TokenFile = None,
    json_out: JsonOut = False,
    refresh: Annotated[bool, typer.Option(help="Re-read the config and re-list every server first.")] = False,
    long: Annotated[
        bool, typer.Option("--long", "-l", help="Whole descriptions and argument lists, wrapped.")
    ] = False,
) -> None:
    """List the tools the agent offers: name, server, description and arguments (* required),
    one line each to fit the terminal; the servers that are not ready follow."""

    async def work(client: agentapi.AgentClient) -> tuple[agentapi.ToolList, agentapi.ServerList]:
        listing = await client.list_tools(refresh=refresh)
        assert listing is not None  # no ETag sent: never a 304
        return listing, await client.servers()

    listing, servers = _with_agent(agent, token_file, work)
    if json_out:
        _print_json(listing.model_dump(mode="json", by_alias=True))
        return
    title = f"{len(listing.tools)} tools (catalog version {listing.version})"
    out.print(tools_table(listing.tools, title=title, width=out.width, long=long), soft_wrap=False)
    for server in servers.servers:
        if server.state not in ("ready", "disabled"):
            why = f": {server.error}" if server.error else ""
            out.print(Text(f"{server.name} is {server.state}{why}", style="yellow"), soft_wrap=False)


def _parse_arguments(args_json: str | None, pairs: list[str]) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    if args_json:
        try:
            parsed = json.loads(args_json)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"--args is not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise typer.BadParameter("--args must be a JSON object")
        arguments.update(parsed)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"-a {pair!r}: expected key=value")
        try:
            arguments[key] = json.loads(raw)  # numbers, booleans, objects...
        except json.JSONDecodeError:
            arguments[key] = raw  # ...and anything else as a plain string
    return arguments


def _decoded_size(data: str) -> int:
    """The byte count of base64 ``data`` (its padding counts for nothing)."""
    return len(data) * 3 // 4 - len(data[-2:]) + len(data[-2:].rstrip("="))


def _print_result(result: agentapi.CallToolResult) -> None:
    # Imported here, as each command's own modules are: the MCP models cost a second at start.
    from workdock.mcp.content import structured_to_send

    for block in result.content:
        if block.type == "text":
            out.print(block.text, markup=False, highlight=False)
        elif block.type == "resource" and block.text is not None:
            out.print(f"[dim]resource {block.uri} ({block.media_type or 'text'}):[/]")
            out.print(block.text, markup=False, highlight=False)
        elif block.type == "resource_link":
            out.print(f"[dim]link:[/] {block.name or ''} {block.uri}", highlight=False)
        else:
            size = _decoded_size(block.data or "")
            where = f" {block.uri}" if block.uri else ""
            out.print(
                escape(f"[{block.type} {block.media_type or ''}, {size} bytes{where}]"),
                style="dim",
                highlight=False,
            )
    # Most servers send their structured content as text too: print it only when it adds something.
    if (structured := structured_to_send(result)) is not None:
        out.print("[dim]structured content:[/]")
        _print_json(structured)


@app.command()
def call(
    name: Annotated[str, typer.Argument(help="The tool's offered name, e.g. github__create_issue.")],
    args: Annotated[str | None, typer.Option("--args", help="Arguments as one JSON object.")] = None,
    arg: Annotated[
        list[str] | None,
        typer.Option(
            "--arg",
            "-a",
            help="One argument as key=value (value parsed as JSON when it is JSON; repeatable).",
        ),
    ] = None,
    timeout_ms: Annotated[
        int | None,
        typer.Option(help="Call timeout in ms (default: server's, else 60000).", min=1, max=600_000),
    ] = None,
    agent: AgentUrl = None,
    token_file: TokenFile = None,
    json_out: JsonOut = False,
) -> None:
    """Call a tool through the agent. Exits non-zero on an error or when the tool reports is_error."""
    arguments = _parse_arguments(args, arg or [])
    result: agentapi.CallToolResult = _with_agent(
        agent, token_file, lambda c: c.call_tool(name, arguments, timeout_ms=timeout_ms)
    )
    if json_out:
        _print_json(result.model_dump(mode="json", exclude_none=True))
    else:
        _print_result(result)
    if result.is_error:
        err.print("[bold red]the tool reported an error[/]")
        raise typer.Exit(1)


def _print_held(server: agentapi.ServerStatus) -> None:
    """What a held server waits for: the command to approve, or the inputs to give."""
    if server.state == "pending_approval":
        out.print(
            f"[bold]{escape(server.name)}[/] waits for approval (`workdock trust {escape(server.name)}`); "
            f"it runs: {escape(server.launch or '')}",
            highlight=False,
        )
    for needed in server.inputs:
        what = f" ({needed.description})" if needed.description else ""
        out.print(
            f"[bold]{escape(server.name)}[/] needs input {escape(needed.id)}{escape(what)}: set "
            f"{needed.env} or enter it in the web UI (Workspaces)",
            highlight=False,
        )


@app.command()
def resources(
    agent: AgentUrl = None,
    token_file: TokenFile = None,
    json_out: JsonOut = False,
    refresh: Annotated[bool, typer.Option(help="Re-read the config and re-list every server first.")] = False,
) -> None:
    """List the resources the agent's servers offer (URI, server, type, name), then their templates."""

    async def work(
        client: agentapi.AgentClient,
    ) -> tuple[agentapi.ResourceList, agentapi.ResourceTemplateList]:
        listing = await client.list_resources(refresh=refresh)
        templates = await client.list_resource_templates()
        assert listing is not None and templates is not None  # no ETag sent: never a 304
        return listing, templates

    listing, templates = _with_agent(agent, token_file, work)
    if json_out:
        _print_json(
            {
                **listing.model_dump(mode="json"),
                "resource_templates": templates.model_dump(mode="json")["resource_templates"],
            }
        )
        return
    title = f"{len(listing.resources)} resources, {len(templates.resource_templates)} templates"
    table = resources_table(listing.resources, templates.resource_templates, title=title, width=out.width)
    out.print(table, soft_wrap=False)


@app.command()
def read(
    uri: Annotated[str, typer.Argument(help="The resource's URI (or its offered id).")],
    server: Annotated[
        str | None, typer.Option(help="The server to read from, when several offer it.")
    ] = None,
    agent: AgentUrl = None,
    token_file: TokenFile = None,
    json_out: JsonOut = False,
) -> None:
    """Read a resource through the agent and print its contents."""
    result: agentapi.ReadResourceResult = _with_agent(
        agent, token_file, lambda c: c.read_resource(uri, server=server)
    )
    if json_out:
        _print_json(result.model_dump(mode="json", exclude_none=True))
        return
    for block in result.contents:
        if block.text is not None:
            out.print(block.text, markup=False, highlight=False)
        else:
            size = _decoded_size(block.data or "")
            out.print(escape(f"[{block.media_type or 'binary'}, {size} bytes: {block.uri}]"), style="dim")


@app.command()
def prompts(
    agent: AgentUrl = None,
    token_file: TokenFile = None,
    json_out: JsonOut = False,
    refresh: Annotated[bool, typer.Option(help="Re-read the config and re-list every server first.")] = False,
) -> None:
    """List the prompts the agent's servers offer: name, server, description, arguments (* required)."""
    listing: agentapi.PromptList = _with_agent(agent, token_file, lambda c: c.list_prompts(refresh=refresh))
    if json_out:
        _print_json(listing.model_dump(mode="json"))
        return
    title = f"{len(listing.prompts)} prompts (catalog version {listing.version})"
    out.print(prompts_table(listing.prompts, title=title, width=out.width), soft_wrap=False)


@app.command()
def prompt(
    name: Annotated[str, typer.Argument(help="The prompt's offered name, e.g. github__summarise.")],
    arg: Annotated[
        list[str] | None,
        typer.Option("--arg", "-a", help="One argument as key=value (always a string; repeatable)."),
    ] = None,
    agent: AgentUrl = None,
    token_file: TokenFile = None,
    json_out: JsonOut = False,
) -> None:
    """Get a prompt with its arguments filled in and print its messages."""
    arguments: dict[str, str] = {}
    for pair in arg or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"-a {pair!r}: expected key=value")
        arguments[key] = value
    result: agentapi.GetPromptResult = _with_agent(agent, token_file, lambda c: c.get_prompt(name, arguments))
    if json_out:
        _print_json(result.model_dump(mode="json", exclude_none=True))
        return
    for message in result.messages:
        out.print(f"[bold]{message.role}:[/]")
        _print_result(agentapi.CallToolResult(content=[message.content]))


@app.command()
def status(
    agent: AgentUrl = None,
    token_file: TokenFile = None,
    json_out: JsonOut = False,
    lines: Annotated[int, typer.Option(help="stderr lines to show per server that is not ready.")] = 10,
) -> None:
    """Show every server's state, errors and stderr tail, and the config files read."""
    listing: agentapi.ServerList = _with_agent(agent, token_file, lambda c: c.servers())
    if json_out:
        _print_json(listing.model_dump(mode="json"))
        return
    table = servers_table(listing.servers, detail=True)
    out.print(table)
    for server in listing.servers:
        for warning in server.warnings:
            out.print(f"[yellow]{server.name}: {warning}[/]", highlight=False)
        _print_held(server)
        if server.state != "ready" and server.stderr_tail and lines > 0:
            out.print(f"[bold]{server.name}[/] stderr (last {min(lines, len(server.stderr_tail))} lines):")
            for line in server.stderr_tail[-lines:]:
                out.print(f"  {line}", markup=False, highlight=False)
    for file in listing.config_files:
        note = f": {file.error}" if file.error else ""
        if file.state == "invalid":
            from workdock.mcp.config import kept_note

            note += f"; {kept_note(file.kept_servers)}"
        style = {"loaded": "green", "missing": "dim", "invalid": "red"}[file.state]
        out.print(f"config [{style}]{file.state}[/] {escape(file.path + note)}", highlight=False)
        for warning in file.warnings:
            out.print(f"  [yellow]{escape(warning)}[/]", highlight=False)


@app.command()
def auth(
    server: Annotated[str, typer.Argument(help="The server to sign in to (its name in .mcp.json).")],
    agent: AgentUrl = None,
    token_file: TokenFile = None,
    browser: Annotated[
        bool, typer.Option(help="Open a browser at the sign-in URL when there is one.")
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the sign-in to come back.")] = 300,
) -> None:
    """Sign in to a server that needs OAuth: prints its URL, receives the answer on 127.0.0.1."""
    from workdock.agent.signin import SignInFailed, sign_in

    async def work(client: agentapi.AgentClient) -> None:
        try:
            await sign_in(client, server, open_browser=browser, timeout=timeout, say=_say)
        except SignInFailed as exc:
            fail(str(exc))

    _with_agent(agent, token_file, work)


def _say(text: str) -> None:
    out.print(text, markup=False, highlight=False, soft_wrap=True)


@app.command()
def trust(
    servers: Annotated[list[str] | None, typer.Argument(help="Servers to approve.")] = None,
    all_servers: Annotated[bool, typer.Option("--all", help="Approve every server waiting.")] = False,
    file: Annotated[
        str | None, typer.Option("--file", help="Approve every server waiting from this config file.")
    ] = None,
    list_only: Annotated[
        bool, typer.Option("--list", help="List the servers waiting for approval, with what they run.")
    ] = False,
    agent: AgentUrl = None,
    token_file: TokenFile = None,
    json_out: JsonOut = False,
) -> None:
    """Approve the workspace's own MCP servers (pending_approval) on a running agent; they start.

    An approval is kept for the entry as written: when the entry's command, arguments or URL
    change, it asks again.
    """
    if list_only or not (servers or all_servers or file):
        listing: agentapi.ServerList = _with_agent(agent, token_file, lambda c: c.servers())
        waiting = [s for s in listing.servers if s.state == "pending_approval"]
        if json_out:
            _print_json([s.model_dump(mode="json") for s in waiting])
            return
        if not waiting:
            out.print("no server waits for approval")
            return
        for server in waiting:
            out.print(f"[bold]{escape(server.name)}[/] from {escape(server.config_file or '?')}")
            out.print(f"  {escape(server.launch or '')}", highlight=False)
        if not list_only:
            out.print("[dim]approve with `workdock trust NAME...`, `--file PATH` or `--all`[/]")
        return
    if sum((bool(servers), all_servers, file is not None)) != 1:
        raise typer.BadParameter("give server names, --file PATH or --all (one of them)")
    result: agentapi.TrustResult = _with_agent(
        agent, token_file, lambda c: c.trust(servers or [], file=file, all=all_servers)
    )
    if json_out:
        _print_json(result.model_dump(mode="json"))
        return
    if result.approved:
        out.print(f"approved (starting): {', '.join(result.approved)}", highlight=False)
    else:
        out.print("no server waits for approval")


# ---- the chat server -----------------------------------------------------------------------------

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        envvar="WORKDOCK_DATABASE_URL",
        help="postgresql://user:pass@host/db for PostgreSQL; default: SQLite in the data dir.",
    ),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        envvar="WORKDOCK_DATA_DIR",
        help="Where the SQLite database and server state live (default $XDG_DATA_HOME/workdock).",
    ),
]


PublicUrl = Annotated[
    str | None,
    typer.Option(
        envvar="WORKDOCK_PUBLIC_URL",
        help="Where users and agents reach the server (behind a reverse proxy: https://...): used in "
        "login URLs and agents' connect commands; https://... also makes the session cookie Secure. "
        "Default: the listen address for login URLs, the URL a request came in on for connect commands.",
    ),
]
TrustedProxy = Annotated[
    list[str] | None,
    typer.Option(
        "--trusted-proxy",
        help="Address of a reverse proxy whose X-Forwarded-Proto/-For are believed (repeatable; "
        "else $WORKDOCK_TRUSTED_PROXIES, comma-separated). None by default.",
    ),
]


def _chat_config_error(exc: ValueError) -> NoReturn:
    fail(str(exc))


Verbose = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Log debug detail (a failed model call's whole traceback, too)."),
]


@app.command()
def server(
    listen: Annotated[str, typer.Option(help="HOST:PORT to serve the API and web UI on.")] = "127.0.0.1:3000",
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    public_url: PublicUrl = None,
    trusted_proxy: TrustedProxy = None,
    max_result_bytes: MaxResultBytes = DEFAULT_MAX_RESULT_BYTES,
    verbose: Verbose = False,
    replica_address: Annotated[
        str | None,
        typer.Option(
            envvar="WORKDOCK_REPLICA_ADDRESS",
            help="HOST:PORT where the other replicas of the service (servers on one PostgreSQL) reach "
            "this one. Default: the listen address (this host's name when it listens on all of them).",
        ),
    ] = None,
) -> None:
    """Run the chat server (API, stream and web UI). The first start prints a one-time admin login URL.

    Models: set WORKDOCK_MODELS (e.g. "openai:gpt-4.1,anthropic:claude-sonnet-4-5") and the providers'
    usual key variables (OPENAI_API_KEY, ANTHROPIC_API_KEY; OPENAI_BASE_URL for any compatible endpoint).
    """
    from workdock.chat.cli_server import run_server

    try:
        run_server(
            listen,
            database_url,
            data_dir,
            public_url,
            trusted_proxy,
            max_result_bytes=max_result_bytes,
            verbose=verbose,
            replica_address=replica_address,
        )
    except ValueError as exc:
        _chat_config_error(exc)


@app.command()
def up(
    dir: Annotated[
        Path,
        typer.Option(
            "--dir",
            help="The workspace to chat with (default: here).",
            exists=True,
            file_okay=False,
            resolve_path=True,
        ),
    ] = Path("."),
    listen: Annotated[str, typer.Option(help="HOST:PORT for the chat server and web UI.")] = "127.0.0.1:3000",
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    public_url: PublicUrl = None,
    trusted_proxy: TrustedProxy = None,
    max_result_bytes: MaxResultBytes = DEFAULT_MAX_RESULT_BYTES,
    trust: TrustAll = False,
    verbose: Verbose = False,
) -> None:
    """Run the chat server and an agent for --dir together, and print the URL to open.

    The workspace is registered for the admin user and the URL carries a one-time login token.
    The workspace's commands and MCP servers do not see the server's own settings and secrets
    (WORKDOCK_*, OPENAI_*, ANTHROPIC_*, OLLAMA_*).
    """
    from workdock.chat.cli_server import run_up

    try:
        run_up(
            dir,
            listen,
            database_url,
            data_dir,
            public_url,
            trusted_proxy,
            max_result_bytes=max_result_bytes,
            trust=trust,
            verbose=verbose,
        )
    except ValueError as exc:
        _chat_config_error(exc)


@app.command("login-url")
def login_url(
    server_url: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="The chat server's URL, as users reach it (default: the running `workdock up`'s, "
            "else $WORKDOCK_SERVER, else http://127.0.0.1:3000).",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Print a fresh one-time login URL for the local admin (the one printed at start works once).

    It is made in the server's database (the data dir's SQLite file, or --database-url), for the
    user of the data dir's admin.token, else the first admin. Valid for 24 hours, used once.
    """
    from workdock.chat.cli_login import LoginUrlError, run_login_url

    try:
        url = run_login_url(server_url, database_url, data_dir)
    except LoginUrlError as exc:
        fail(str(exc))
    out.print(url, markup=False, highlight=False)
    err.print("[dim]valid for 24 hours; it works once[/]")


@app.command()
def chat(
    message: Annotated[
        str | None,
        typer.Option(
            "--message", "-m", help="Send one message, stream the turn, and exit (0 if the turn succeeded)."
        ),
    ] = None,
    chat_id: Annotated[
        str | None, typer.Option("--chat", help="Continue this chat (default: pick one).")
    ] = None,
    workspace: Annotated[str | None, typer.Option(help="Workspace id for a new chat.")] = None,
    model: Annotated[str | None, typer.Option(help="provider:model for a new chat.")] = None,
    server_url: Annotated[
        str, typer.Option("--server", envvar="WORKDOCK_SERVER", help="The chat server's URL.")
    ] = "http://127.0.0.1:3000",
    token: Annotated[str | None, typer.Option(envvar="WORKDOCK_TOKEN", help="Your API token.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Chat in the terminal: stream the answer and show every tool call as it runs."""
    from workdock.chat.cli_chat import run_chat

    raise typer.Exit(run_chat(server_url, token, chat_id, workspace, model, message, data_dir))


def main() -> None:
    # Typer shows rich tracebacks with locals by default: they could print secrets. Keep them plain.
    os.environ.setdefault("_TYPER_STANDARD_TRACEBACK", "1")
    app()


if __name__ == "__main__":
    main()
