"""``workdock chat``: a terminal client on the chat server's API.

Pick or create a chat (a resumed one shows its last messages), type messages, watch the turn
stream in: the model's markdown rendered as it comes, each tool call with its arguments, a
preview of its result, its duration and any error (``cli_render``). Ctrl-C stops the running turn
and the chat stays open; Ctrl-D quits. ``--message`` runs one turn without prompting; the exit
code says whether it succeeded. ``@uri`` in a message attaches that resource and
``/server__prompt key=value`` runs a prompt (``cli_compose``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx2
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workdock.chat.cli_ask import ask_at_prompt
from workdock.chat.cli_compose import ComposeError, compose
from workdock.chat.cli_render import ChatView, ago
from workdock.chat.datadir import ADMIN_TOKEN_FILE, default_data_dir

DEFAULT_SERVER = "http://127.0.0.1:3000"
TERMINAL = ("idle", "error", "interrupted")
PICK_PAGE = 20  # chats offered when picking one; older ones are opened by id


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


class LineReader:
    """Lines from the terminal, one reader at a time: ``input()`` runs in a thread that cannot be
    cancelled, so a read given up on (an approval answered elsewhere) is handed to the next one."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._pending: asyncio.Future[str] | None = None

    async def read(self, prompt: str) -> str:
        if self._pending is None or self._pending.done():
            self._pending = asyncio.ensure_future(asyncio.to_thread(input, prompt))
        else:
            self.console.print(prompt, end="")
        pending = self._pending
        try:
            return await asyncio.shield(pending)
        finally:
            if pending.done() and self._pending is pending:
                self._pending = None


APPROVAL_PROMPT = "allow {name}? [y]es, [n]o, [a]lways in this chat: "


class ChatSession:
    def __init__(self, server: str, token: str, console: Console) -> None:
        self.console = console
        self.view = ChatView(console)
        self.http = httpx2.AsyncClient(
            base_url=server.rstrip("/"), timeout=30, headers={"Authorization": f"Bearer {token}"}
        )
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.chat_id = ""
        self._turn: asyncio.Task[Any] | None = None
        self._interrupting = False
        self.lines = LineReader(console)
        self.interactive = True  # approvals are asked at the prompt (else left to the UI / API)
        self._asking = asyncio.Lock()  # one approval question at a time
        self._questions: dict[str, asyncio.Task[None]] = {}

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
        page = await self.api("GET", "/chats", params={"limit": PICK_PAGE})
        chats = page["chats"]
        if interactive and chats:
            names = {w["id"]: w["name"] for w in (await self.api("GET", "/workspaces"))["workspaces"]}
            table = Table(title="chats", title_justify="left")
            for column in ("#", "title", "workspace", "status", "updated"):
                table.add_column(column)
            for index, chat in enumerate(chats, 1):
                table.add_row(
                    str(index),
                    Text(chat["title"]),
                    Text(names.get(chat["workspace_id"], "?")),
                    chat["status"],
                    ago(chat["updated_at"]),
                )
            if page["next_cursor"]:
                table.caption = f"the {len(chats)} most recently used; open an older one with --chat ID"
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

    async def show(self, chat_id: str, *, history: bool) -> None:
        """The chat's header (title, workspace, model, tool count) and, for a chat with a past, its
        last messages."""
        chat = await self.api("GET", f"/chats/{chat_id}")
        workspace = await self.api("GET", f"/workspaces/{chat['workspace_id']}")
        try:
            tools = await self.api("GET", f"/chats/{chat_id}/tools")
        except ChatClientError:
            tools = None  # the header says less; the turn reports failing sources itself
        self.view.header(chat, workspace["name"], tools)
        if history:
            self.view.history((await self.api("GET", f"/chats/{chat_id}/messages"))["messages"])

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
        self._drain()  # the snapshot of where the chat stood

    def _drain(self) -> None:
        while not self.events.empty():
            self.events.get_nowait()

    async def turn(self, chat_id: str, content: str) -> bool:
        """Send one message and render its turn; True if it ended well. Ctrl-C (see
        :meth:`on_interrupt`) stops it: the turn ends as interrupted and this returns False."""
        self._drain()  # what is left of a turn that was given up on
        try:
            request = await compose(self.api, self.console, chat_id, content)
        except ComposeError as exc:
            self.console.print(Text(str(exc), style="red"))
            return False
        if request is None:  # answered here (/resources, /prompts)
            return True
        path, body = request
        await self.api("POST", f"/chats/{chat_id}/{path}", json=body)
        self._turn = asyncio.current_task()
        self._interrupting = False
        try:
            return await self._follow_turn()
        finally:
            self._turn = None
            for asked in self._questions.values():
                asked.cancel()
            self._questions.clear()
            self.view.end_text()

    async def _follow_turn(self) -> bool:
        started = False
        ok = True
        while True:
            event = await self.events.get()
            kind = event.get("type")
            if kind == "start":
                started = True
            self.view.event(event)
            if kind == "tool-approval-request":
                self._question(event["toolCallId"])
            elif kind == "tool-approval-response" and (
                asked := self._questions.pop(event["approvalId"], None)
            ):
                asked.cancel()  # answered (here or elsewhere): no need to ask
            elif kind == "data-tool-elicitation" and event["data"]["status"] == "pending":
                await self.answer(event["data"])
            if kind == "error":
                ok = False
            if kind == "data-status" and started and event["data"]["status"] in TERMINAL:
                return ok and event["data"]["status"] == "idle"

    def _question(self, call_id: str) -> None:
        if not self.interactive:
            name = self.view.tool_name(call_id) or "?"
            self.console.print(Text(f"? {name} waits for approval (web UI or API)", style="yellow"))
            return
        self._questions[call_id] = asyncio.get_running_loop().create_task(self._ask(call_id))

    async def _ask(self, call_id: str) -> None:
        """Ask whether the call may run, and send the answer."""
        async with self._asking:
            self.view.end_text()
            name = self.view.tool_name(call_id) or "?"
            while True:
                try:
                    said = (await self.lines.read(APPROVAL_PROMPT.format(name=name))).strip().lower()
                except EOFError:
                    return
                if said in ("y", "yes", "n", "no", "a", "always"):
                    break
                self.console.print(Text("answer y, n or a", style="dim"))
            body: dict[str, Any] = {"approve": said[0] != "n", "always": said[0] == "a"}
            if said[0] == "n":
                with contextlib.suppress(EOFError):
                    reason = (await self.lines.read("reason (Enter for none): ")).strip()
                    if reason:
                        body["reason"] = reason
            self._questions.pop(call_id, None)  # answered here: the turn's echo of it cancels nothing
            try:
                await self.api("POST", f"/chats/{self.chat_id}/approvals/{call_id}", json=body)
            except ChatClientError as exc:
                self.console.print(Text(f"not sent: {exc}", style="yellow"))

    async def answer(self, request: dict[str, Any]) -> None:
        """Ask a tool's request for input at the prompt and send the answer (input that ends declines)."""
        self.view.end_text()
        tool = self.view.tool_name(request["toolCallId"]) or "a tool"
        path = f"/chats/{self.chat_id}/elicitations/{request['elicitationId']}"
        for _ in range(3):
            answer = await ask_at_prompt(self.console, tool, request)
            action, content = answer if answer is not None else ("decline", None)
            body: dict[str, Any] = {"action": action} | ({"content": content} if content is not None else {})
            try:
                await self.api("POST", path, json=body)
                return
            except ChatClientError as exc:
                self.console.print(Text(f"not taken: {exc}", style="red"))
                if answer is None or "→ 400" not in str(exc):
                    return  # answered elsewhere (409) or over (404): nothing to ask again

    def on_interrupt(self) -> None:
        """Ctrl-C: stop the running turn (the chat stays open; Ctrl-D quits). A second Ctrl-C gives
        up waiting for the turn to end. At the prompt it only says how to quit."""
        turn = self._turn
        if turn is None:
            self.console.print(Text("\n(Ctrl-D quits)", style="dim"))
            self.console.print("› ", end="")
            return
        if self._interrupting:
            turn.cancel()
            return
        self._interrupting = True
        self.view.end_text()
        self.console.print(Text("stopping the turn… (Ctrl-C again to stop waiting)", style="yellow"))
        asyncio.get_running_loop().create_task(self._interrupt())

    async def _interrupt(self) -> None:
        try:
            await self.api("POST", f"/chats/{self.chat_id}/interrupt")
        except ChatClientError as exc:
            self.console.print(Text(f"could not interrupt: {exc}", style="red"))


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
    loop = asyncio.get_running_loop()
    try:
        chat_id = await session.pick_chat(chat_id, workspace_id, model, interactive=message is None)
        session.chat_id = chat_id
        await session.watch(chat_id)
        await session.show(chat_id, history=message is None)
        loop.add_signal_handler(signal.SIGINT, session.on_interrupt)
        if message is not None:
            session.interactive = sys.stdin.isatty()
            return 0 if await _one_turn(session, chat_id, message) else 1
        console.print(Text("Ctrl-C stops a turn, Ctrl-D quits", style="dim"))
        while True:
            try:
                content = await session.lines.read("› ")
            except EOFError:
                console.print()
                return 0
            if content.strip():
                await _one_turn(session, chat_id, content)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        await session.aclose()


async def _one_turn(session: ChatSession, chat_id: str, content: str) -> bool:
    try:
        return await session.turn(chat_id, content)
    except asyncio.CancelledError:  # a second Ctrl-C: stop waiting for the turn's end
        if (task := asyncio.current_task()) is not None:
            task.uncancel()
        session.console.print(Text("stopped waiting; the turn ends on the server", style="yellow"))
        return False


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
