"""How ``workdock chat`` shows a chat in the terminal: its header, its stored history, and a turn's
stream as it arrives (the model's text rendered as markdown by rich, each tool call on its own
lines)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.text import Text

PREVIEW = 300
HISTORY_MESSAGES = 10  # a resumed chat shows this many of its last messages
LIVE_REFRESH_PER_SECOND = 8


def sign_in_notes(tools: dict[str, Any]) -> list[str]:
    """What the header says of the per-user servers waiting for the user's sign-in."""
    return [
        f"{s['server']} needs your own sign-in: type /signin {s['server']} for the URL to open"
        for s in tools.get("sign_ins", [])
        if s["state"] == "needs_auth"
    ]


def ago(iso: str, now: datetime | None = None) -> str:
    """An ISO time as people say it: "just now", "5 min ago", "3 h ago", "2 d ago", else the date."""
    try:
        then = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = max(0.0, ((now or datetime.now(UTC)) - then).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    if seconds < 86400 * 7:
        return f"{int(seconds // 86400)} d ago"
    return then.astimezone().strftime("%Y-%m-%d")


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"… (+{len(text) - limit} chars)"


def _result_text(content: Sequence[dict[str, Any]]) -> str:
    return "\n".join(c.get("text") or "" for c in content if c.get("type") == "text").strip()


class ChatView:
    """Renders one chat; the stream's events arrive one by one through :meth:`event`."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._tools: dict[str, str] = {}  # tool_call_id → tool name
        self._text = ""  # the markdown streamed so far
        self._live: Live | None = None

    # ---- header and history ---------------------------------------------------------------------

    def header(self, chat: dict[str, Any], workspace: str, tools: dict[str, Any] | None) -> None:
        parts = [f"workspace {workspace}", f"model {chat.get('model') or 'none configured'}"]
        if tools is not None:
            count = sum(1 for t in tools.get("tools", []) if t.get("state") != "disabled")
            failed = len(tools.get("failures", []))
            parts.append(f"{count} tools" + (f" ({failed} sources failed)" if failed else ""))
        title = Text(chat.get("title") or "new chat", style="bold")
        self.console.print(title, Text("  " + " · ".join(parts), style="dim"))
        for note in sign_in_notes(tools or {}):
            self.console.print(Text(f"! {note}", style="yellow"))

    def history(self, messages: Sequence[dict[str, Any]], limit: int = HISTORY_MESSAGES) -> None:
        """The last ``limit`` stored messages, as they looked when they streamed."""
        shown = [m for m in messages if m.get("role") in ("user", "assistant", "tool")][-limit:]
        earlier = len(messages) - len(shown)
        if earlier > 0:
            self.console.print(Text(f"… {earlier} earlier messages", style="dim"))
        for message in shown:
            for part in message.get("parts", []):
                self._stored_part(message["role"], part)
        if shown:
            self.console.rule(style="dim")

    def _stored_part(self, role: str, part: dict[str, Any]) -> None:
        kind = part.get("type")
        if role == "user" and kind == "text":
            self.console.print(Text("› " + part.get("text", ""), style="bold"))
        elif kind == "text" and part.get("text"):
            self.console.print(Markdown(part["text"]))
        elif kind == "tool-call":
            self._call(part["tool_call_id"], part["tool_name"], part.get("args"))
        elif kind == "tool-result":
            content = part.get("content") or []
            if part.get("is_error"):
                self._error(part["tool_call_id"], _result_text(content))
            else:
                self._output(part["tool_call_id"], content, part.get("duration_ms"))

    # ---- a turn's stream ------------------------------------------------------------------------

    def end_text(self) -> None:
        """Finish the text being streamed: its final markdown stays on screen."""
        if self._live is not None:
            self._live.update(Markdown(self._text), refresh=True)
            self._live.stop()
            self._live = None
        self._text = ""

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "text-delta":
            self._text += event["delta"]
            if self._live is None:
                self._live = Live(
                    Markdown(self._text),
                    console=self.console,
                    refresh_per_second=LIVE_REFRESH_PER_SECOND,
                    vertical_overflow="ellipsis",  # the whole text is printed when it ends
                )
                self._live.start()
            else:
                self._live.update(Markdown(self._text))
        elif kind == "text-end":
            self.end_text()
        elif kind == "tool-input-available":
            self.end_text()
            self._call(event["toolCallId"], event["toolName"], event.get("input"))
        elif kind == "tool-output-available":
            output = event.get("output") or {}
            self._output(event["toolCallId"], output.get("content") or [], output.get("duration_ms"))
        elif kind == "tool-output-error":
            self._error(event["toolCallId"], event.get("errorText", ""))
        elif kind == "tool-output-denied":
            name = self._tools.get(event["toolCallId"], "?")
            self.console.print(Text(f"✗ {name} ", style="red") + Text("denied", style="dim"))
        elif kind == "tool-approval-response":
            name = self._tools.get(event["toolCallId"] if "toolCallId" in event else event["approvalId"], "?")
            said = "approved" if event.get("approved") else "denied"
            self.console.print(Text(f"  {name} {said}", style="dim"))
        elif kind == "data-tool-output":  # what a running command prints, as it comes
            self.end_text()
            self.console.print(Text(event["data"]["text"], style="dim"), end="")
        elif kind == "data-tool-progress":
            data = event["data"]
            amount = f"{data['progress']:g}" + (f"/{data['total']:g}" if data.get("total") else "")
            note = f" {data['message']}" if data.get("message") else ""
            name = self.tool_name(data["toolCallId"]) or "?"
            self.console.print(Text(f"… {name} {amount}{note}", style="dim"))
        elif kind == "data-status" and event["data"].get("tool_failures"):
            for failure in event["data"]["tool_failures"]:
                where = failure["source"] + (f"/{failure['server']}" if failure.get("server") else "")
                self.console.print(Text(f"! tools from {where} skipped: {failure['error']}", style="yellow"))
        elif kind == "error":
            self.end_text()
            self.console.print(Text("error: ", style="bold red") + Text(str(event.get("errorText"))))
        elif kind == "abort":
            self.end_text()
            self.console.print(Text("interrupted", style="yellow"))

    # ---- tool calls -----------------------------------------------------------------------------

    def tool_name(self, call_id: str) -> str | None:
        return self._tools.get(call_id)

    def _call(self, call_id: str, name: str, args: Any) -> None:
        self._tools[call_id] = name
        shown = cut(json.dumps(args, ensure_ascii=False), 200)
        self.console.print(Text(f"▶ {name} ", style="bold cyan") + Text(shown, style="dim"))

    def _output(self, call_id: str, content: Sequence[dict[str, Any]], duration_ms: Any) -> None:
        name = self._tools.get(call_id, "?")
        took = f"({duration_ms} ms)" if duration_ms is not None else ""
        self.console.print(Text(f"✓ {name} ", style="green") + Text(took, style="dim"))
        if text := _result_text(content):
            self.console.print(Text(cut(text, PREVIEW), style="dim"))

    def _error(self, call_id: str, text: str) -> None:
        name = self._tools.get(call_id, "?")
        self.console.print(Text(f"✗ {name} ", style="red") + Text(cut(text, PREVIEW)))
