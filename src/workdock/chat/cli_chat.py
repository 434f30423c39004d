"""``workdock chat``: a terminal client on the chat server's API.

Pick or create a chat, type messages, watch the turn stream in: text as it comes, each tool
call with its arguments, a preview of its result, its duration and any error. ``--message``
runs one turn without prompting; the exit code says whether it succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

import httpx2
from rich.console import Console
from rich.table import Table

from workdock.chat.app import ADMIN_TOKEN_FILE
from workdock.chat.cli_ask import ask_at_prompt
from workdock.chat.services import default_data_dir

DEFAULT_SERVER = "http://127.0.0.1:3000"
TERMINAL = ("idle", "error", "interrupted")
PREVIEW = 300


class ChatClientError(Exception):
    pass


def resolve_token(token: str | None, data_dir: Path | None) -> str:
    """--token, else $WORKDOCK_TOKEN, else the admin token a local server left in its data dir."""
    token = token or os.environ.get("WORKDOCK_TOKEN")
    if token:
        return token
    path = (data_dir or default_data_dir()) / ADMIN_TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    raise ChatClientError(f"no token: pass --token, set WORKDOCK_TOKEN, or run the server locally ({path})")


class ChatSession:
    def __init__(self, server: str, token: str, console: Console) -> None:
        self.console = console
        self.http = httpx2.AsyncClient(
            base_url=server.rstrip("/"), timeout=30, headers={"Authorization": f"Bearer {token}"}
        )
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._tools: dict[str, tuple[str, Any]] = {}
        self._in_text = False

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self.http.aclose()

    async def api(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self.http.request(method, "/api/v0" + path, **kwargs)
        except httpx2.TransportError as exc:
            raise ChatClientError(f"cannot reach the chat server at {self.http.base_url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                body = response.json()
                detail = f"{body.get('message')}" + (f": {body['detail']}" if body.get("detail") else "")
            except ValueError:
                detail = response.text[:300]
            raise ChatClientError(f"{method} {path} → {response.status_code} {detail}")
        return response.json() if response.content else None

    # ---- choosing a chat ------------------------------------------------------------------------

    async def pick_chat(
        self, chat_id: str | None, workspace_id: str | None, model: str | None, interactive: bool
    ) -> str:
        if chat_id:
            await self.api("GET", f"/chats/{chat_id}")
            return chat_id
        chats = (await self.api("GET", "/chats"))["chats"]
        if interactive and chats:
            table = Table(title="chats")
            table.add_column("#")
            table.add_column("title")
            table.add_column("status")
            table.add_column("updated")
            for index, chat in enumerate(chats, 1):
                table.add_row(str(index), chat["title"], chat["status"], chat["updated_at"][:19])
            self.console.print(table)
            answer = (await asyncio.to_thread(input, "chat number, or Enter for a new chat: ")).strip()
            if answer.isdigit() and 1 <= int(answer) <= len(chats):
                return str(chats[int(answer) - 1]["id"])
        return await self.new_chat(workspace_id, model)

    async def new_chat(self, workspace_id: str | None, model: str | None) -> str:
        if workspace_id is None:
            workspaces = (await self.api("GET", "/workspaces"))["workspaces"]
            if not workspaces:
                raise ChatClientError(
                    "no workspace yet: register one (POST /api/v0/workspaces) or use `workdock up`"
                )
            workspace_id = workspaces[0]["id"]
        body: dict[str, Any] = {"workspace_id": workspace_id}
        if model:
            body["model"] = model
        return str((await self.api("POST", "/chats", json=body))["id"])

    # ---- streaming ------------------------------------------------------------------------------

    async def watch(self, chat_id: str) -> None:
        """Follow the chat's stream in the background; returns once subscribed."""
        subscribed = asyncio.Event()

        async def read() -> None:
            async with self.http.stream("GET", f"/api/v0/chats/{chat_id}/stream", timeout=None) as response:
                if response.status_code != 200:
                    raise ChatClientError(f"stream: HTTP {response.status_code}")
                data: list[str] = []
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif line == "" and data:
                        self.events.put_nowait(json.loads("\n".join(data)))
                        data = []
                        subscribed.set()

        self._reader = asyncio.create_task(read())
        done, _ = await asyncio.wait(
            {self._reader, asyncio.ensure_future(subscribed.wait())}, return_when=asyncio.FIRST_COMPLETED
        )
        if self._reader in done:
            self._reader.result()  # raises what went wrong
        while not self.events.empty():  # the snapshot of where the chat stood
            self.events.get_nowait()

    async def turn(self, chat_id: str, content: str) -> bool:
        """Send one message and render its turn; True if it ended well."""
        await self.api("POST", f"/chats/{chat_id}/messages", json={"content": content})
        started = False
        ok = True
        while True:
            event = await self.events.get()
            kind = event.get("type")
            if kind == "start":
                started = True
            self.render(event)
            if kind == "data-tool-elicitation" and event["data"]["status"] == "pending":
                await self.answer(chat_id, event["data"])
            if kind == "error":
                ok = False
            if kind == "data-status" and started and event["data"]["status"] in TERMINAL:
                self.end_text()
                return ok and event["data"]["status"] == "idle"

    async def answer(self, chat_id: str, request: dict[str, Any]) -> None:
        """Ask a tool's request for input at the prompt and send the answer (input that ends declines)."""
        self.end_text()
        tool = self._tools.get(request["toolCallId"], ("a tool", None))[0]
        path = f"/chats/{chat_id}/elicitations/{request['elicitationId']}"
        for _ in range(3):
            answer = await ask_at_prompt(self.console, tool, request)
            action, content = answer if answer is not None else ("decline", None)
            body: dict[str, Any] = {"action": action} | ({"content": content} if content is not None else {})
            try:
                await self.api("POST", path, json=body)
                return
            except ChatClientError as exc:
                self.console.print(f"[red]not taken:[/] {exc}", highlight=False)
                if answer is None or "→ 400" not in str(exc):
                    return  # answered elsewhere (409) or over (404): nothing to ask again

    # ---- rendering ------------------------------------------------------------------------------

    def end_text(self) -> None:
        if self._in_text:
            self.console.print()
            self._in_text = False

    def render(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "text-delta":
            self.console.print(event["delta"], end="", markup=False, highlight=False)
            self._in_text = True
        elif kind == "text-end":
            self.end_text()
        elif kind == "tool-input-available":
            self.end_text()
            self._tools[event["toolCallId"]] = (event["toolName"], event.get("input"))
            args = json.dumps(event.get("input"), ensure_ascii=False)
            self.console.print(
                f"[bold cyan]▶ {event['toolName']}[/] [dim]{_cut(args, 200)}[/]", highlight=False
            )
        elif kind == "tool-output-available":
            name = self._tools.get(event["toolCallId"], ("?", None))[0]
            output = event.get("output") or {}
            text = "\n".join(c.get("text", "") for c in output.get("content", []) if c.get("type") == "text")
            self.console.print(
                f"[green]✓ {name}[/] [dim]({output.get('duration_ms', '?')} ms)[/]", highlight=False
            )
            if text.strip():
                self.console.print(_cut(text.strip(), PREVIEW), style="dim", markup=False, highlight=False)
        elif kind == "tool-output-error":
            name = self._tools.get(event["toolCallId"], ("?", None))[0]
            self.console.print(
                f"[red]✗ {name}[/] {_cut(event.get('errorText', ''), PREVIEW)}", highlight=False
            )
        elif kind == "data-tool-output":
            self.end_text()
            self.console.print(event["data"]["text"], end="", style="dim", markup=False, highlight=False)
        elif kind == "data-tool-progress":
            data = event["data"]
            name = self._tools.get(data["toolCallId"], ("?", None))[0]
            amount = f"{data['progress']:g}" + (f"/{data['total']:g}" if data.get("total") else "")
            note = f" {data['message']}" if data.get("message") else ""
            self.console.print(f"[dim]… {name} {amount}{note}[/]", highlight=False)
        elif kind == "data-status" and event["data"].get("tool_failures"):
            for failure in event["data"]["tool_failures"]:
                where = failure["source"] + (f"/{failure['server']}" if failure.get("server") else "")
                self.console.print(
                    f"[yellow]! tools from {where} skipped: {failure['error']}[/]", highlight=False
                )
        elif kind == "error":
            self.end_text()
            self.console.print(f"[bold red]error:[/] {event.get('errorText')}", highlight=False)
        elif kind == "abort":
            self.end_text()
            self.console.print("[yellow]interrupted[/]")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"… (+{len(text) - limit} chars)"


async def _run(
    server: str,
    token: str,
    chat_id: str | None,
    workspace_id: str | None,
    model: str | None,
    message: str | None,
    console: Console,
) -> int:
    session = ChatSession(server, token, console)
    try:
        chat_id = await session.pick_chat(chat_id, workspace_id, model, interactive=message is None)
        await session.watch(chat_id)
        if message is not None:
            return 0 if await session.turn(chat_id, message) else 1
        console.print(f"[dim]chat {chat_id} — Ctrl-C interrupts a turn, Ctrl-D quits[/]")
        while True:
            try:
                content = await asyncio.to_thread(input, "› ")
            except EOFError:
                return 0
            if not content.strip():
                continue
            try:
                await session.turn(chat_id, content)
            except asyncio.CancelledError:
                await session.api("POST", f"/chats/{chat_id}/interrupt")
                raise
    finally:
        await session.aclose()


def run_chat(
    server: str = DEFAULT_SERVER,
    token: str | None = None,
    chat_id: str | None = None,
    workspace_id: str | None = None,
    model: str | None = None,
    message: str | None = None,
    data_dir: Path | None = None,
) -> int:
    """Run the terminal client; returns the process exit code (0: the turn(s) succeeded)."""
    console = Console(highlight=False)
    try:
        return asyncio.run(
            _run(server, resolve_token(token, data_dir), chat_id, workspace_id, model, message, console)
        )
    except ChatClientError as exc:
        console.print(f"[bold red]workdock chat:[/] {exc}", highlight=False)
        return 2
    except KeyboardInterrupt:
        console.print()
        return 130


def main(argv: list[str] | None = None) -> int:
    """``python -m workdock.chat.cli_chat``: the same options as ``workdock chat``."""
    import argparse

    parser = argparse.ArgumentParser(prog="workdock chat")
    parser.add_argument("--server", default=os.environ.get("WORKDOCK_SERVER", DEFAULT_SERVER))
    parser.add_argument("--token")
    parser.add_argument("--chat", dest="chat_id")
    parser.add_argument("--workspace", dest="workspace_id")
    parser.add_argument("--model")
    parser.add_argument("--message", "-m")
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args(argv)
    return run_chat(
        args.server, args.token, args.chat_id, args.workspace_id, args.model, args.message, args.data_dir
    )


if __name__ == "__main__":
    raise SystemExit(main())
