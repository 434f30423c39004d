"""Big catalogs and long chats: what the model is sent per step, and how well find_tools finds.

1. A 1,000-tool catalog (bench/catalog_data.py) plus the built-ins: the tool schemas sent per step
   with the default budget (deferred behind find_tools) and with no budget (everything), estimated
   tokens and JSON bytes; the cost of choosing a step's tools and of building the index.
2. A scripted model searches with find_tools for 50 named tasks (worded unlike the tools' own
   descriptions): how often the right tool is first, and in the top 5.
3. A 1,000-message chat (250 turns, each a question, a tool call, a 2 KB result and an answer) for a
   model with a 128,000-token window: the history sent per step with and without shortening, and
   the turn's own work per step (history conversion, the tools, shortening) with and without, as a
   ratio.

Everything runs in this process through the code the turn uses (ChatOffer, fit_history); no model
or server is involved, so the figures are the catalog's and history's own.

    python bench/catalog_bench.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from pydantic_ai.tools import ToolDefinition

sys.path.insert(0, str(Path(__file__).parent))

from catalog_data import QUERIES, TASKS, catalog

from workdock.agentapi import CallToolResult
from workdock.chat.catalog import Budget, CatalogIndex, ChatOffer, recent_tools
from workdock.chat.context import HistoryFitter, context_window, fit_history, history_tokens
from workdock.chat.convert import to_model_messages
from workdock.chat.store.models import Chat, Message
from workdock.chat.tools.base import CallReporter, OfferedTool, text_result
from workdock.chat.tools.builtin import SCHEMAS
from workdock.chat.toolset import ToolSet

VERBOSE = False


async def _never(arguments: dict[str, Any], reporter: CallReporter) -> CallToolResult:
    return text_result("not called in the benchmark")


def toolset(size: int) -> ToolSet:
    offered = [
        OfferedTool(name, "builtin", None, name, description, schema, _never)
        for name, (description, schema) in SCHEMAS.items()
    ]
    offered += [
        OfferedTool(
            t["name"], "workspace", t["server"], t["name"], t["description"], t["input_schema"], _never
        )
        for t in catalog(size)
    ]
    return ToolSet(
        tools={t.name: t for t in offered},
        definitions=[
            ToolDefinition(name=t.name, parameters_json_schema=t.parameters, description=t.description)
            for t in offered
        ],
    )


def chat(**fields: Any) -> Chat:
    return Chat(id="bench", disabled_tools=None, tool_budget=None, **fields)


def per_call_ms(work: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def definitions_bytes(definitions: list[ToolDefinition]) -> int:
    return len(
        orjson.dumps(
            [
                {"name": d.name, "description": d.description, "parameters": d.parameters_json_schema}
                for d in definitions
            ]
        )
    )


def bench_catalog(repeat: int) -> None:
    tools = toolset(1000)
    started = time.perf_counter()
    CatalogIndex(tools).search("warm up", set(tools.tools), 5)
    build_ms = (time.perf_counter() - started) * 1000
    deferred = ChatOffer.for_chat(tools, chat(), Budget(), [])
    everything = ChatOffer.for_chat(tools, chat(), Budget(0, 0), [])
    with_budget, without = deferred.step(), everything.step()
    print(f"catalog: {len(tools.tools)} tools ({len(SCHEMAS)} built-in), default budget {Budget()}")
    print(f"  {'':24} {'tools sent':>10} {'~tokens':>9} {'bytes':>9}")
    for label, view in (("no budget (everything)", without), ("default budget", with_budget)):
        print(
            f"  {label:24} {len(view.definitions):>10} {view.sent_tokens:>9} "
            f"{definitions_bytes(view.definitions):>9}"
        )
    print(
        f"  prompt size per step with the budget / without: {with_budget.sent_tokens / without.sent_tokens:.3f}"
    )
    print(
        f"  choosing a step's tools: {per_call_ms(deferred.step, repeat):.3f} ms deferred, "
        f"{per_call_ms(everything.step, repeat):.3f} ms everything; index built once in {build_ms:.0f} ms"
    )

    for label, queries in (("the user's words", [t for t, _ in TASKS]), ("a model's search", QUERIES)):
        search(tools, label, queries)


def search(tools: ToolSet, label: str, queries: list[str]) -> None:
    """The scripted model: one find_tools call per task, then a look at what its next step gets."""
    first = top5 = 0
    misses = []
    search_ms = []
    for query, (_, right) in zip(queries, TASKS, strict=True):
        offer = ChatOffer.for_chat(tools, chat(), Budget(), [])
        started = time.perf_counter()
        result = offer.find({"query": query, "limit": 5})
        search_ms.append((time.perf_counter() - started) * 1000)
        names = [t["name"] for t in orjson.loads(result.content[0].text or "")["tools"]]
        first += names[:1] == [right]
        top5 += right in names
        if right not in names:
            misses.append(f"{query!r} → {names[:3]} (wanted {right})")
        # Found tools are offered from the next step: the model's next request carries them.
        assert right not in names or right in {d.name for d in offer.step().definitions}
    print(
        f"find_tools, {len(TASKS)} tasks in {label}: right tool first {first}/{len(TASKS)}, "
        f"in the top 5 {top5}/{len(TASKS)} ({top5 / len(TASKS):.0%}); "
        f"median search {statistics.median(search_ms):.2f} ms"
    )
    if VERBOSE:
        for miss in misses:
            print(f"  missed: {miss}")


def long_chat(turns: int = 250, result_bytes: int = 2048) -> list[Message]:
    rows: list[Message] = []
    for turn in range(turns):
        call = f"call_{turn}"
        result = (f"result of turn {turn}: " + "lorem ipsum dolor sit amet " * 200)[:result_bytes]
        rows += [
            Message(role="user", parts=[{"type": "text", "text": f"question {turn}"}], superseded=False),
            Message(
                role="assistant",
                model="openai:gpt-4o",
                parts=[
                    {
                        "type": "tool-call",
                        "tool_call_id": call,
                        "tool_name": "read_file",
                        "args": {"path": "x"},
                    }
                ],
                superseded=False,
            ),
            Message(
                role="tool",
                parts=[
                    {
                        "type": "tool-result",
                        "tool_call_id": call,
                        "tool_name": "read_file",
                        "is_error": False,
                        "content": [{"type": "text", "text": result}],
                    }
                ],
                superseded=False,
            ),
            Message(
                role="assistant",
                model="openai:gpt-4o",
                parts=[{"type": "text", "text": f"answer {turn}"}],
                superseded=False,
            ),
        ]
    return rows


def bench_long_chat(repeat: int) -> None:
    rows = long_chat()
    window = context_window("openai:gpt-4o", {})
    tools = toolset(len(TASKS))
    offer = ChatOffer.for_chat(tools, chat(), Budget(), recent_tools(rows))
    history = to_model_messages(rows)
    reserved = offer.step().sent_tokens
    sent = fit_history(history, window, reserved)
    print(f"long chat: {len(rows)} messages, window {window} tokens (shortening from 75 %, down to 50 %)")
    print(
        f"  history sent per step: {history_tokens(history) + reserved} ~tokens without shortening, "
        f"{history_tokens(sent) + reserved} with (the stored history is unchanged)"
    )

    def step_without() -> None:
        offer.step()

    fitter = HistoryFitter(window)  # as the turn keeps one for all its steps

    def step_with() -> None:
        fitter.fit(history, offer.step().sent_tokens)

    convert_ms = per_call_ms(lambda: to_model_messages(rows), max(repeat // 10, 5))
    plain_ms = per_call_ms(step_without, repeat)
    first_ms = per_call_ms(lambda: fit_history(history, window, reserved), 5)
    shortened_ms = per_call_ms(step_with, repeat)
    print(
        f"  once per turn: reading the history for the model {convert_ms:.2f} ms, "
        f"fitting it to the window the first time {first_ms:.2f} ms"
    )
    print(
        f"  each later step: choosing tools {plain_ms:.3f} ms without shortening, {shortened_ms:.2f} ms with it; "
        f"a one-step turn's history work with / without shortening: {(convert_ms + first_ms) / convert_ms:.2f}×"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--misses", action="store_true", help="print the searches that missed")
    args = parser.parse_args()
    global VERBOSE
    VERBOSE = args.misses
    bench_catalog(args.repeat)
    print()
    bench_long_chat(args.repeat)


if __name__ == "__main__":
    asyncio.run(main())
