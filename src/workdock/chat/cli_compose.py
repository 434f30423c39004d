"""``workdock chat`` input: ``@uri`` attaches a resource, ``/server__prompt key=value`` runs a prompt.

``/resources`` and ``/prompts`` list what the chat's workspace (and admin servers) offer.
``/signin`` lists the per-user admin servers and your sign-in to each; ``/signin SERVER`` prints
the URL that signs you in to one (open it in a browser), ``/signout SERVER`` signs you out. A
prompt's offered name always holds ``__``, so these words can never be one.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

Api = Callable[..., Awaitable[Any]]
# "@" at the start or after a space, then the URI (up to the next space)
_AT = re.compile(r"(?:(?<=\s)|^)@(\S+)")


class ComposeError(Exception):
    """What the user typed cannot be sent; the message says why."""


async def compose(api: Api, console: Console, chat_id: str, line: str) -> tuple[str, dict[str, Any]] | None:
    """The request a typed line makes (path under the chat, body), or None when it was answered
    here (a listing)."""
    stripped = line.strip()
    if stripped in ("/resources", "/prompts"):
        await _list(api, console, chat_id, stripped[1:])
        return None
    command, _, server = stripped.partition(" ")
    if command in ("/signin", "/signout"):
        await _sign_in(api, console, chat_id, command[1:], server.strip())
        return None
    if stripped.startswith("/") and not stripped.startswith("//"):
        return await _prompt(api, chat_id, stripped[1:])
    uris = _AT.findall(line)
    if not uris:
        return "messages", {"content": line}
    listed = (await api("GET", f"/chats/{chat_id}/resources"))["resources"]
    attachments = []
    for uri in uris:
        # A listed URI goes to its server (the workspace's first); any other is the workspace's to route.
        match = next((r for r in listed if r["uri"] == uri), None)
        if match is None:
            attachments.append({"uri": uri})
        else:
            attachments.append({"uri": uri, "server": match["server_name"], "source": match["source"]})
    content = " ".join(_AT.sub("", line).split())
    return "messages", {"content": content, "attachments": attachments}


async def _prompt(api: Api, chat_id: str, command: str) -> tuple[str, dict[str, Any]]:
    try:
        name, *pairs = shlex.split(command)
    except ValueError as exc:
        raise ComposeError(f"cannot read the prompt's arguments: {exc}") from None
    arguments: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ComposeError(f"/{name}: arguments are key=value, not {pair!r}")
        arguments[key] = value
    prompts = (await api("GET", f"/chats/{chat_id}/prompts"))["prompts"]
    prompt = next((p for p in prompts if p["name"] == name), None)
    if prompt is None:
        raise ComposeError(f"no prompt named {name!r} (/prompts lists them)")
    missing = [a["name"] for a in prompt["arguments"] if a["required"] and a["name"] not in arguments]
    if missing:
        raise ComposeError(f"/{name} needs {', '.join(f'{m}=…' for m in missing)}")
    return "prompt", {"name": name, "arguments": arguments, "source": prompt["source"]}


async def _sign_in(api: Api, console: Console, chat_id: str, what: str, server: str) -> None:
    """List the per-user servers and your sign-ins, or sign in to (out of) one of them."""
    own = (await api("GET", f"/chats/{chat_id}/tools")).get("sign_ins", [])
    if not server:
        if not own:
            console.print(Text("no admin server here asks for a sign-in of your own", style="dim"))
        for s in own:
            console.print(Text(f"{s['server']}: {'signed in' if s['state'] == 'ready' else s['state']}"))
        return
    match = next((s for s in own if s["server"] == server), None)
    if match is None:
        raise ComposeError(f"no admin server {server!r} signs in per user (/signin lists them)")
    if what == "signout":
        await api("DELETE", f"/mcp-servers/{match['server_id']}/signin")
        console.print(Text(f"signed out of {server}", style="green"))
        return
    started = await api("POST", f"/mcp-servers/{match['server_id']}/signin", json={})
    console.print(Text(f"Sign in to {server} by opening this URL in your browser:"))
    console.print(Text(started["authorization_url"], style="bold"), soft_wrap=True)


async def _list(api: Api, console: Console, chat_id: str, kind: str) -> None:
    body = await api("GET", f"/chats/{chat_id}/{kind}")
    table = Table(title=kind, title_justify="left", show_edge=False)
    if kind == "resources":
        for column in ("uri", "server", "type"):
            table.add_column(column, overflow="fold")
        for r in body["resources"]:
            table.add_row(
                Text("@" + r["uri"]),
                Text(f"{r['source']} · {r['server_name']}"),
                Text(r.get("mime_type") or ""),
            )
    else:
        for column in ("prompt", "server", "arguments"):
            table.add_column(column, overflow="fold")
        for p in body["prompts"]:
            args = ", ".join(f"{a['name']}*" if a["required"] else a["name"] for a in p["arguments"])
            table.add_row(Text("/" + p["name"]), Text(f"{p['source']} · {p['server_name']}"), Text(args))
    console.print(table)
    for failure in body.get("failures", []):
        console.print(Text(f"{failure['source']}: {failure['error']}", style="yellow"))
