"""The budget's and the context windows' settings, and what the history says was used."""

from __future__ import annotations

import pytest
from pydantic_ai.messages import ModelRequest, ToolReturnPart, UserPromptPart

from workdock.chat.catalog import Budget, recent_tools
from workdock.chat.cli_server import server_config
from workdock.chat.context import DEFAULT_WINDOW, fit_history, history_tokens
from workdock.chat.models import ModelCatalog, parse_models_with_windows
from workdock.chat.store.models import Chat, Message


def test_the_budget_comes_from_the_environment_and_a_chat_overrides_it() -> None:
    assert Budget.from_env({}) == Budget(40, 20_000)
    budget = Budget.from_env({"WORKDOCK_TOOL_BUDGET_TOOLS": "100", "WORKDOCK_TOOL_BUDGET_TOKENS": "0"})
    assert budget == Budget(100, 0)
    assert budget.exceeded(101, 10**9) and not budget.exceeded(100, 10**9)  # 0: no limit
    chat = Chat(tool_budget={"max_tokens": 500})
    assert budget.for_chat(chat) == Budget(100, 500)
    for bad in ("many", "-1", "1.5"):
        with pytest.raises(ValueError, match="WORKDOCK_TOOL_BUDGET_TOOLS"):
            Budget.from_env({"WORKDOCK_TOOL_BUDGET_TOOLS": bad})


def test_a_bad_budget_stops_the_server_with_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("WORKDOCK_TOOL_BUDGET_TOKENS", "lots")
    with pytest.raises(SystemExit, match="error: WORKDOCK_TOOL_BUDGET_TOKENS must be a whole number"):
        server_config("http://127.0.0.1:3000", None, tmp_path)


def test_context_windows_from_the_table_or_the_models_setting() -> None:
    models = ModelCatalog.from_env(
        {"WORKDOCK_MODELS": "openai:local@32000,anthropic:claude-sonnet-4-5,openai:gpt-4o"}
    )
    assert models.names == ["openai:local", "anthropic:claude-sonnet-4-5", "openai:gpt-4o"]
    from workdock.chat.context import context_window

    assert context_window("openai:local", models.windows) == 32_000
    assert context_window("anthropic:claude-sonnet-4-5", models.windows) == 200_000
    assert context_window("openai:gpt-4o-mini", models.windows) == 128_000
    assert context_window("openai:gpt-4.1", models.windows) == 1_047_576
    assert context_window("ollama:qwen3", models.windows) == DEFAULT_WINDOW
    for bad in ("openai:x@", "openai:x@big", "openai:x@0"):
        with pytest.raises(ValueError, match="context window"):
            parse_models_with_windows(bad)


def test_shortening_leaves_the_messages_it_was_given_alone() -> None:
    result = ToolReturnPart(tool_name="t", content="x" * 40_000, tool_call_id="c1")
    history = [
        ModelRequest(parts=[UserPromptPart("first")]),
        ModelRequest(parts=[result]),
        ModelRequest(parts=[UserPromptPart("second")]),
    ]
    sent = fit_history(history, window=10_000)
    assert history[1].parts[0] is result and len(result.content) == 40_000
    assert history_tokens(sent) < 5_000 and "shortened for the model" in sent[1].parts[0].content
    assert fit_history(history, window=1_000_000) is history  # far from the window: as it is


def test_recent_tools_are_the_calls_and_finds_of_the_history_newest_first() -> None:
    rows = [
        Message(role="assistant", parts=[{"type": "tool-call", "tool_name": "a__old", "tool_call_id": "1"}]),
        Message(
            role="assistant",
            superseded=True,
            parts=[{"type": "tool-call", "tool_name": "a__replaced", "tool_call_id": "2"}],
        ),
        Message(
            role="assistant", parts=[{"type": "tool-call", "tool_name": "find_tools", "tool_call_id": "3"}]
        ),
        Message(
            role="tool",
            parts=[
                {
                    "type": "tool-result",
                    "tool_name": "find_tools",
                    "tool_call_id": "3",
                    "is_error": False,
                    "content": [{"type": "text", "text": '{"tools": [{"name": "a__x"}, {"name": "a__y"}]}'}],
                }
            ],
        ),
    ]
    assert recent_tools(rows) == ["a__x", "a__y", "a__old"]
    assert recent_tools(rows, limit=1) == ["a__x"]
