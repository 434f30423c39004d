"""What a tool source hands the turn: offered tools with a way to call them, and its failures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from workdock.agentapi import CallToolResult, ContentBlock

Source = Literal["builtin", "admin", "workspace"]
Action = Literal["accept", "decline", "cancel"]


@dataclass(frozen=True)
class Answer:
    """The user's answer to a request for input: accept (with the form's content), decline, cancel."""

    action: Action
    content: dict[str, Any] | None = None


class CallReporter(Protocol):
    """What a running call tells the turn (shown on its card), and how it asks the user."""

    def progress(self, progress: float, total: float | None, message: str | None) -> None: ...

    def output(self, text: str) -> None: ...

    async def ask(self, request: dict[str, Any]) -> Answer:
        """Put ``request`` ({mode, message, requested_schema | url}) to the user; their answer."""
        ...


CallFn = Callable[[dict[str, Any], CallReporter], Awaitable[CallToolResult]]


@dataclass(frozen=True)
class OfferedTool:
    name: str  # the name the model sees: unique, ^[A-Za-z0-9_-]{1,64}$
    source: Source
    server: str | None
    source_name: str  # the name the source itself knows the tool by
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments
    call: CallFn = field(compare=False, repr=False)
    # It only reads (MCP's ``readOnlyHint: true``, or a built-in that reads): runs unasked under
    # the ``ask`` approval policy.
    read_only: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "server": self.server,
            "description": self.description,
            "input_schema": self.parameters,
        }


@dataclass(frozen=True)
class SourceFailure:
    source: Source
    server: str | None
    error: str
    # A per-user admin server's id: its failure may be a sign-in the caller can do.
    server_id: str | None = None

    def describe(self) -> dict[str, Any]:
        described = {"source": self.source, "server": self.server, "error": self.error}
        if self.server_id is not None:
            described["server_id"] = self.server_id
        return described


@dataclass
class Gathered:
    tools: list[OfferedTool] = field(default_factory=list)
    failures: list[SourceFailure] = field(default_factory=list)
    # Identifies ``tools``: a source hands the same version only with the same tools, so the merged
    # tool set (and its schemas for the model) can be reused. None: not reusable (unless no tools).
    version: Hashable | None = None


def error_result(message: str) -> CallToolResult:
    """A result that tells the model the call failed and why (never an exception out of a turn)."""
    return CallToolResult(content=[ContentBlock(type="text", text=message)], is_error=True)


def text_result(text: str, *, is_error: bool = False, structured: Any = None) -> CallToolResult:
    return CallToolResult(
        content=[ContentBlock(type="text", text=text)], is_error=is_error, structured_content=structured
    )
