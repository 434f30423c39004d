"""Which of a chat's tools the model is offered at each step: the chat's toggles, and big catalogs.

A chat may turn off whole sources, servers or single tools (``Toggles``, stored on the chat). When
the tools left are more than the budget (``Budget``: tools, or estimated tokens of their schemas),
the model is offered the built-ins, the tools this chat used or found recently, and the built-in
``find_tools``, a BM25 search (``bm25s``) over the other tools' names, descriptions and argument
names. What a search finds is offered from the next step on, for the rest of the turn, and counts
as recently used afterwards (the search results are read back from the stored history).
"""

from __future__ import annotations

import math
import os
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal

import bm25s
import orjson
import Stemmer
from pydantic_ai.tools import ToolDefinition

from workdock.agentapi import CallToolResult
from workdock.chat.store.models import Chat, Message
from workdock.chat.tools.base import CallReporter, OfferedTool, error_result, text_result
from workdock.chat.toolset import ToolSet

FIND_TOOLS = "find_tools"
DEFAULT_MAX_TOOLS = 40
DEFAULT_MAX_TOKENS = 20_000
MAX_TOOLS_ENV = "WORKDOCK_TOOL_BUDGET_TOOLS"
MAX_TOKENS_ENV = "WORKDOCK_TOOL_BUDGET_TOKENS"
RECENT_LIMIT = 20  # tools kept offered from earlier turns, most recent first
FIND_LIMIT = 5  # results of one search unless the model asks for more
FIND_MAX = 20
DESCRIPTION_PREVIEW = 300
# No tokenizer is at hand without a download at run time (tiktoken fetches its tables), so tokens
# are estimated: about four bytes of JSON per token, which is close for English text and schemas.
BYTES_PER_TOKEN = 4

ToolState = Literal["loaded", "deferred", "disabled"]


def estimate_tokens(data: Any) -> int:
    return math.ceil(len(orjson.dumps(data)) / BYTES_PER_TOKEN)


def definition_tokens(definition: ToolDefinition) -> int:
    return estimate_tokens(
        {
            "name": definition.name,
            "description": definition.description,
            "parameters": definition.parameters_json_schema,
        }
    )


@dataclass(frozen=True)
class Budget:
    """Above either limit the catalog is deferred behind ``find_tools``; 0 means no limit."""

    max_tools: int = DEFAULT_MAX_TOOLS
    max_tokens: int = DEFAULT_MAX_TOKENS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Budget:
        env = os.environ if env is None else env
        return cls(
            _int_env(env, MAX_TOOLS_ENV, DEFAULT_MAX_TOOLS), _int_env(env, MAX_TOKENS_ENV, DEFAULT_MAX_TOKENS)
        )

    def for_chat(self, chat: Chat) -> Budget:
        """The chat's own limits where it set them, the server's otherwise."""
        own = chat.tool_budget or {}
        return Budget(int(own.get("max_tools", self.max_tools)), int(own.get("max_tokens", self.max_tokens)))

    def exceeded(self, tools: int, tokens: int) -> bool:
        return bool(self.max_tools and tools > self.max_tools) or bool(
            self.max_tokens and tokens > self.max_tokens
        )


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of 0 or more (0: no limit), not {value!r}") from None
    if number < 0:
        raise ValueError(f"{name} must be 0 or more (0: no limit), not {number}")
    return number


@dataclass(frozen=True)
class Toggles:
    """What a chat turned off: whole sources, servers (by source and name) and single tools."""

    sources: frozenset[str] = frozenset()
    servers: frozenset[tuple[str, str]] = frozenset()
    tools: frozenset[str] = frozenset()

    @classmethod
    def of(cls, chat: Chat) -> Toggles:
        stored = chat.disabled_tools or {}
        return cls(
            frozenset(stored.get("sources") or ()),
            frozenset((s["source"], s["server"]) for s in stored.get("servers") or ()),
            frozenset(stored.get("tools") or ()),
        )

    def admits(self, tool: OfferedTool) -> bool:
        if tool.source in self.sources or tool.name in self.tools:
            return False
        return tool.server is None or (tool.source, tool.server) not in self.servers


# ---- search -----------------------------------------------------------------------------------------

_STEMMER = Stemmer.Stemmer("english")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[_\-.:/]+")


def _words(text: str) -> str:
    """Names as words: ``github__listIssues`` → ``github list Issues``."""
    return _SEPARATORS.sub(" ", _CAMEL.sub(" ", text))


def search_text(tool: OfferedTool) -> str:
    properties = tool.parameters.get("properties")
    arguments = " ".join(properties) if isinstance(properties, dict) else ""
    server = tool.server or ""
    return " ".join((_words(tool.name), _words(server), tool.description, _words(arguments)))


def _tokenize(texts: list[str]) -> Any:
    return bm25s.tokenize(texts, stopwords="en", stemmer=_STEMMER.stemWords, show_progress=False)


class CatalogIndex:
    """A merged tool set's schema sizes and (built when first searched) its BM25 index."""

    def __init__(self, toolset: ToolSet) -> None:
        self.tools = toolset.tools
        self.definitions = {d.name: d for d in toolset.definitions}
        self.tokens = {name: definition_tokens(d) for name, d in self.definitions.items()}
        self._names = list(self.tools)
        self._retriever: bm25s.BM25 | None = None

    def search(self, query: str, admits: set[str], limit: int) -> list[OfferedTool]:
        """The best ``limit`` matches among the names in ``admits``."""
        if not self._names:
            return []
        if self._retriever is None:
            retriever = bm25s.BM25()
            retriever.index(_tokenize([search_text(self.tools[n]) for n in self._names]), show_progress=False)
            self._retriever = retriever
        words = _tokenize([query]).vocab
        terms = [t for t in words if t in self._retriever.vocab_dict]
        if not terms:
            return []
        scores = self._retriever.get_scores(terms)
        ranked = sorted(
            (i for i, score in enumerate(scores) if score > 0 and self._names[i] in admits),
            key=lambda i: -float(scores[i]),
        )
        return [self.tools[self._names[i]] for i in ranked[:limit]]


_INDEXES: OrderedDict[int, CatalogIndex] = OrderedDict()
_INDEX_CACHE = 16


def index_for(toolset: ToolSet) -> CatalogIndex:
    """One index per merged tool set (the gatherer reuses it while the sources do not change)."""
    key = id(toolset.tools)
    index = _INDEXES.get(key)
    if index is None or index.tools is not toolset.tools:
        index = _INDEXES[key] = CatalogIndex(toolset)
        while len(_INDEXES) > _INDEX_CACHE:
            _INDEXES.popitem(last=False)
    _INDEXES.move_to_end(key)
    return index


# ---- what the history says was used -----------------------------------------------------------------


def recent_tools(rows: Sequence[Message], limit: int = RECENT_LIMIT) -> list[str]:
    """Tools the chat called or found, most recent first (``find_tools`` itself left out)."""
    recent = RecentTools()
    recent.add(rows)
    return recent.names(limit)


class RecentTools:
    """``recent_tools`` of a history that grows by appending (chat/history_cache.py keeps one per
    chat): each name once, ordered by when it last came up; of the names one ``find_tools``
    result offered, the best match counts as the latest."""

    def __init__(self) -> None:
        self._order: dict[str, None] = {}  # least recent first

    def _touch(self, name: str) -> None:
        self._order.pop(name, None)
        self._order[name] = None

    def add(self, rows: Sequence[Message]) -> None:
        for row in rows:
            if getattr(row, "superseded", False):
                continue
            for part in row.parts:
                if part.get("type") == "tool-call" and part.get("tool_name") != FIND_TOOLS:
                    self._touch(str(part.get("tool_name")))
                elif part.get("type") == "tool-result" and part.get("tool_name") == FIND_TOOLS:
                    for name in reversed(found_in(part)):
                        self._touch(name)

    def names(self, limit: int = RECENT_LIMIT) -> list[str]:
        return list(islice(reversed(self._order), limit))


def found_in(result_part: Mapping[str, Any]) -> list[str]:
    """The tool names a stored ``find_tools`` result offered (its text is the JSON it answered)."""
    if result_part.get("is_error"):
        return []
    for block in result_part.get("content") or ():
        try:
            data = orjson.loads(block.get("text") or "")
            return [str(t["name"]) for t in data["tools"]]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    return []


# ---- one chat's offer -------------------------------------------------------------------------------

FIND_TOOLS_DESCRIPTION = (
    "Search this chat's other tools by what they do. Only some tools are offered to you directly; "
    "the rest are found here, by words from their names, descriptions and arguments. The tools found "
    "are offered to you from your next step on: call them then."
)
FIND_TOOLS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "description": "What the tool should do, in a few words."},
        "limit": {"type": "integer", "minimum": 1, "maximum": FIND_MAX, "description": "At most this many."},
    },
    "required": ["query"],
}


@dataclass
class StepTools:
    """What one step offers: the definitions the model is sent, and the tools it may call."""

    definitions: list[ToolDefinition]
    tools: dict[str, OfferedTool]
    states: dict[str, ToolState]
    deferred: bool
    schema_tokens: int  # estimated tokens of all enabled tools' schemas (what deferral saves)
    sent_tokens: int  # estimated tokens of the schemas sent


@dataclass
class ChatOffer:
    """A chat's tool offer over one turn (or one look from ``GET /chats/{id}/tools``)."""

    toolset: ToolSet
    budget: Budget
    toggles: Toggles
    recent: list[str] = field(default_factory=list)
    found: list[str] = field(
        default_factory=list
    )  # by find_tools during this turn, offered from the next step
    _find_tool: OfferedTool | None = None

    @classmethod
    def for_chat(cls, toolset: ToolSet, chat: Chat, budget: Budget, recent: list[str]) -> ChatOffer:
        """``recent``: the chat's ``recent_tools``."""
        return cls(toolset, budget.for_chat(chat), Toggles.of(chat), recent)

    def update(self, chat: Chat, budget: Budget) -> None:
        """The chat's settings as they are now (a running turn picks them up at its next step)."""
        self.budget = budget.for_chat(chat)
        self.toggles = Toggles.of(chat)

    @property
    def index(self) -> CatalogIndex:
        return index_for(self.toolset)

    def step(self) -> StepTools:
        index = self.index
        enabled = {name: tool for name, tool in self.toolset.tools.items() if self.toggles.admits(tool)}
        schema_tokens = sum(index.tokens[name] for name in enabled)
        states: dict[str, ToolState] = {
            name: "disabled" for name in self.toolset.tools if name not in enabled
        }
        if not self.budget.exceeded(len(enabled), schema_tokens):
            states.update(dict.fromkeys(enabled, "loaded"))
            definitions = [index.definitions[name] for name in enabled]
            return StepTools(definitions, enabled, states, False, schema_tokens, schema_tokens)
        loaded = {name for name, tool in enabled.items() if tool.source == "builtin"}
        loaded.update(name for name in (*self.found, *self.recent) if name in enabled)
        for name in enabled:
            states[name] = "loaded" if name in loaded else "deferred"
        find = self._find()
        definitions = [index.definitions[name] for name in enabled if name in loaded]
        definitions.append(
            ToolDefinition(
                name=FIND_TOOLS, parameters_json_schema=FIND_TOOLS_SCHEMA, description=find.description
            )
        )
        states[FIND_TOOLS] = "loaded"
        sent = sum(index.tokens[d.name] for d in definitions[:-1]) + definition_tokens(definitions[-1])
        # Every enabled tool can be called (a model may know a name already); only some are sent.
        return StepTools(definitions, {**enabled, FIND_TOOLS: find}, states, True, schema_tokens, sent)

    def _find(self) -> OfferedTool:
        if self._find_tool is None:

            async def call(arguments: dict[str, Any], _: CallReporter) -> CallToolResult:
                return self.find(arguments)

            self._find_tool = OfferedTool(
                name=FIND_TOOLS,
                source="builtin",
                server=None,
                source_name=FIND_TOOLS,
                description=FIND_TOOLS_DESCRIPTION,
                parameters=FIND_TOOLS_SCHEMA,
                call=call,
            )
        return self._find_tool

    def find(self, arguments: dict[str, Any]) -> CallToolResult:
        query = arguments.get("query")
        limit = arguments.get("limit", FIND_LIMIT)
        if not isinstance(query, str) or not query.strip():
            return error_result("find_tools needs a `query`: what the tool should do, in a few words")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= FIND_MAX:
            return error_result(f"find_tools: `limit` must be a whole number from 1 to {FIND_MAX}")
        admits = {name for name, tool in self.toolset.tools.items() if self.toggles.admits(tool)}
        found = self.index.search(query[:2000], admits, limit)
        for tool in found:
            if tool.name not in self.found:
                self.found.append(tool.name)
        answer = {
            "tools": [
                {
                    "name": tool.name,
                    "description": tool.description[:DESCRIPTION_PREVIEW],
                    "arguments": sorted(tool.parameters.get("properties") or {}),
                }
                for tool in found
            ],
            "note": (
                "These tools are offered to you from your next step on."
                if found
                else "No tool matches; try other words."
            ),
        }
        return text_result(orjson.dumps(answer).decode())

    def describe(self) -> dict[str, Any]:
        """``GET /chats/{id}/tools``: every tool with its state, and how the budget stands."""
        view = self.step()
        described = self.toolset.describe()
        for tool in described["tools"]:
            tool["state"] = view.states.get(tool["name"], "loaded")
        if view.deferred:
            find = self._find().describe()
            find["state"] = "loaded"
            described["tools"].insert(0, find)
        described["catalog"] = {
            "deferred": view.deferred,
            "enabled_tools": sum(1 for s in view.states.values() if s != "disabled") - int(view.deferred),
            "schema_tokens": view.schema_tokens,
            "sent_tokens": view.sent_tokens,
            "max_tools": self.budget.max_tools,
            "max_tokens": self.budget.max_tokens,
        }
        return described


def no_such_tool(offered: StepTools, name: str) -> str:
    """The error a call of a tool the step does not offer gets: why, and what to use instead."""
    if offered.states.get(name) == "disabled":
        return f"tool {name!r} is turned off for this chat"
    if offered.deferred:
        return f"there is no tool named {name!r}; search with {FIND_TOOLS} for one that does the job"
    return f"there is no tool named {name!r}; available: {', '.join(sorted(offered.tools)) or 'none'}"
