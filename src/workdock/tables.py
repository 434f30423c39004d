"""Terminal tables: the MCP servers (``workdock status``, ``workdock up``), the tools
(``workdock tools``), the resources and the prompts (``workdock resources``, ``workdock prompts``)."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workdock.agentapi import PromptInfo, ResourceInfo, ResourceTemplateInfo, ServerStatus, ToolInfo

STATE_STYLE = {
    "ready": "green",
    "connecting": "yellow",
    "restarting": "yellow",
    "failed": "red",
    "disabled": "dim",
    "needs_auth": "magenta",
    "pending_approval": "magenta",
    "needs_input": "magenta",
}


def servers_table(servers: Sequence[ServerStatus], *, title: str = "servers", detail: bool = False) -> Table:
    """Name, state, tools and error of each server; ``detail`` adds transport, restarts, protocol."""
    table = Table(title=title, title_justify="left")
    columns = ["name", "transport", "state", "tools", "restarts", "protocol", "error"]
    if not detail:
        columns = ["name", "state", "tools", "error"]
    for column in columns:
        table.add_column(column, overflow="fold")
    for server in servers:
        cells = {
            "name": Text(server.name),
            "transport": Text(server.transport or ""),
            "state": Text(server.state, style=STATE_STYLE.get(server.state, "")),
            "tools": Text(str(server.tool_count) if server.state == "ready" else ""),
            "restarts": Text(str(server.restarts)),
            "protocol": Text(server.protocol_version or ""),
            "error": Text(server.error or ""),  # Text: an error is never read as markup
        }
        table.add_row(*(cells[c] for c in columns))
    return table


def print_servers(console: Console, servers: Sequence[ServerStatus], *, title: str = "servers") -> None:
    if not servers:
        console.print(f"{title}: none declared (.mcp.json)")
        return
    ready = sum(1 for s in servers if s.state == "ready")
    console.print(servers_table(servers, title=f"{title}: {ready} of {len(servers)} ready"))


def argument_names(tool: ToolInfo) -> str:
    """The tool's argument names, required ones marked with ``*``."""
    required = set(tool.required)
    return ", ".join(f"{name}*" if name in required else name for name in tool.schema_)


def tools_table(tools: Sequence[ToolInfo], *, title: str, width: int, long: bool = False) -> Table:
    """One line per tool within ``width`` columns (descriptions cut to their first line, what does
    not fit ends in an ellipsis; the name is never cut: it is what ``call`` takes). ``long`` wraps
    every description and argument list in full instead."""
    table = Table(title=title, title_justify="left", caption="* required", caption_justify="left")
    table.box = box.SIMPLE_HEAD
    name_width = max((len(t.name) for t in tools), default=4)
    server_width = min(max((len(t.server_name) for t in tools), default=6), 12)
    # Left after the two fixed columns, each column's padding (2) and the dividers and edges (5).
    rest = max(width - name_width - server_width - 13, 20)
    cut = {"no_wrap": not long, "overflow": "fold" if long else "ellipsis"}
    table.add_column("name", style="bold cyan", no_wrap=True, min_width=name_width)
    table.add_column("server", no_wrap=True, width=server_width, overflow="ellipsis")
    table.add_column("description", width=None if long else rest * 3 // 5, **cut)  # type: ignore[arg-type]
    table.add_column("args", width=None if long else rest - rest * 3 // 5, **cut)  # type: ignore[arg-type]
    for tool in tools:
        description = (tool.description or "").strip()
        if not long:
            description = description.split("\n", 1)[0]
        table.add_row(Text(tool.name), Text(tool.server_name), Text(description), Text(argument_names(tool)))
    return table


def _fitted(title: str, first: Sequence[str], second: Sequence[str], width: int) -> tuple[Table, int]:
    """A table whose first column is never cut (it is what the next command takes) and whose second
    is short; returns it with the width left for the rest."""
    table = Table(title=title, title_justify="left")
    table.box = box.SIMPLE_HEAD
    first_width = max((len(v) for v in first), default=4)
    second_width = min(max((len(v) for v in second), default=6), 12)
    table.add_column(style="bold cyan", no_wrap=True, min_width=first_width)
    table.add_column(no_wrap=True, width=second_width, overflow="ellipsis")
    return table, max(width - first_width - second_width - 13, 20)


def resources_table(
    resources: Sequence[ResourceInfo], templates: Sequence[ResourceTemplateInfo], *, title: str, width: int
) -> Table:
    """One line per resource (URI, server, type, name and description), then each template."""
    uris = [r.uri for r in resources] + [t.uri_template for t in templates]
    servers = [r.server_name for r in resources] + [t.server_name for t in templates]
    table, rest = _fitted(title, uris, servers, width)
    table.columns[0].header, table.columns[1].header = "uri", "server"
    table.add_column("type", no_wrap=True, width=min(rest // 3, 24), overflow="ellipsis")
    table.add_column("name / description", no_wrap=True, width=rest - min(rest // 3, 24), overflow="ellipsis")
    for r in resources:
        about = " - ".join(x for x in (r.title or r.name, (r.description or "").split("\n", 1)[0]) if x)
        table.add_row(Text(r.uri), Text(r.server_name), Text(r.mime_type or ""), Text(about))
    for t in templates:
        about = " - ".join(
            x for x in (f"template: {t.title or t.name}", (t.description or "").split("\n", 1)[0]) if x
        )
        table.add_row(Text(t.uri_template), Text(t.server_name), Text(t.mime_type or ""), Text(about))
    return table


def prompt_arguments(prompt: PromptInfo) -> str:
    return ", ".join(f"{a.name}*" if a.required else a.name for a in prompt.arguments)


def prompts_table(prompts: Sequence[PromptInfo], *, title: str, width: int) -> Table:
    """One line per prompt: name, server, description's first line, arguments (* required)."""
    table, rest = _fitted(title, [p.name for p in prompts], [p.server_name for p in prompts], width)
    table.columns[0].header, table.columns[1].header = "name", "server"
    table.caption, table.caption_justify = "* required", "left"
    table.add_column("description", no_wrap=True, width=rest * 3 // 5, overflow="ellipsis")
    table.add_column("args", no_wrap=True, width=rest - rest * 3 // 5, overflow="ellipsis")
    for p in prompts:
        description = (p.description or p.title or "").strip().split("\n", 1)[0]
        table.add_row(Text(p.name), Text(p.server_name), Text(description), Text(prompt_arguments(p)))
    return table
