"""The MCP servers as a terminal table, for ``workdock status`` and ``workdock up``."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from workdock.agentapi import ServerStatus

STATE_STYLE = {
    "ready": "green",
    "connecting": "yellow",
    "restarting": "yellow",
    "failed": "red",
    "disabled": "dim",
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
