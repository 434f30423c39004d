"""What the agent's MCP endpoint passes on for a 2025-era client besides calls: the servers' log
messages (from each client's own level up), argument completion, resource subscriptions and
their updates, and a server's sampling request to a client that offers a model. Real SDK
clients over streamable HTTP, a real agent, the ``relays`` fixture server behind it."""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from tests.agent.test_mcp_endpoint import http_client
from tests.support.agent import RunningAgent, fixture_server
from tests.support.helpers import wait_until

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning"),
]

NOT_AVAILABLE = "sampling is not available: "


@pytest.fixture
def relays(start_agent: Any) -> RunningAgent:
    agent: RunningAgent = start_agent(
        {"relay": fixture_server("relays.py", FIXTURE_ERA="legacy"), "plain": fixture_server("slow_tool.py")}
    )
    agent.wait_state("relay", "ready")
    agent.wait_state("plain", "ready")
    return agent


def stderr_of(agent: RunningAgent, server: str) -> list[str]:
    """What the server printed on stderr lately (the agent keeps its tail in the status)."""
    servers = agent.http.get("/api/v0/mcp/servers").json()["servers"]
    tail: list[str] = next(s["stderr_tail"] for s in servers if s["name"] == server)
    return tail


def _texts(result: types.CallToolResult) -> list[str]:
    return [block.text for block in result.content if isinstance(block, types.TextContent)]


async def test_log_messages_reach_each_client_from_its_own_level(relays: RunningAgent) -> None:
    heard: dict[str, list[tuple[str, Any, str | None]]] = {"verbose": [], "quiet": []}

    def listener(name: str) -> Any:
        async def on_log(params: types.LoggingMessageNotificationParams) -> None:
            heard[name].append((params.level, params.data, params.logger))

        return on_log

    async with (
        http_client(relays, "legacy", logging_callback=listener("verbose")) as verbose,
        http_client(relays, "legacy", logging_callback=listener("quiet")) as quiet,
    ):
        await verbose.session.set_logging_level("debug")
        await quiet.session.set_logging_level("warning")
        assert _texts(await verbose.call_tool("relay__log_lines", {})) == ["logged"]
        await wait_until(lambda: len(heard["verbose"]) == 3 and heard["quiet"], message="the log messages")
    # Named by the server that logged; each client only from its own level up.
    assert heard["verbose"] == [
        ("debug", "one", "relay/worker"),
        ("info", "two", "relay/worker"),
        ("warning", "three", "relay/worker"),
    ]
    assert heard["quiet"] == [("warning", "three", "relay/worker")]
    assert "relays: level debug" in stderr_of(relays, "relay")  # asked for the most verbose


async def test_completion_of_a_prompt_argument(relays: RunningAgent) -> None:
    async with http_client(relays, "legacy") as client:
        ref = types.PromptReference(type="ref/prompt", name="relay__greet")
        result = await client.session.complete(ref, {"name": "name", "value": "al"})
        assert result.completion.values == ["alice", "albert"]
        with pytest.raises(MCPError) as unknown:
            await client.session.complete(
                types.PromptReference(type="ref/prompt", name="nope"), {"name": "x", "value": ""}
            )
        assert unknown.value.error.code == types.INVALID_PARAMS


async def test_a_subscription_hears_of_updates_until_it_ends(relays: RunningAgent) -> None:
    updates: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(message.params.uri)

    async with (
        http_client(relays, "legacy", message_handler=on_message) as watcher,
        http_client(relays, "legacy") as other,
    ):
        await watcher.session.subscribe_resource("test://watched")
        await wait_until(
            lambda: "relays: subscribe test://watched" in stderr_of(relays, "relay"),
            message="the subscription upstream",
        )
        await other.call_tool("relay__touch", {})
        await wait_until(lambda: updates == ["test://watched"], message="the update to reach the subscriber")
        await watcher.session.unsubscribe_resource("test://watched")
        await wait_until(
            lambda: "relays: unsubscribe test://watched" in stderr_of(relays, "relay"),
            message="the unsubscription",
        )
        await other.call_tool("relay__touch", {})
        with anyio.move_on_after(1):  # nothing more may come: give a late one a moment to show
            await wait_until(lambda: len(updates) > 1, timeout=30)  # the moment ends it, not this
        assert updates == ["test://watched"]
        with pytest.raises(MCPError):
            await watcher.session.subscribe_resource("test://nobody-offers-this")


async def test_a_sampling_request_goes_to_the_client_that_offers_a_model(relays: RunningAgent) -> None:
    asked: list[str] = []

    async def model(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        content = params.messages[0].content
        asked.append(content.text if isinstance(content, types.TextContent) else "?")
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="hello from the client"), model="m"
        )

    async with http_client(relays, "legacy", sampling_callback=model) as client:
        assert _texts(await client.call_tool("relay__ask_model", {})) == ["hello from the client"]
    assert asked == ["Say hello"]
    # A client without a model: the server is told sampling is not available, and why.
    async with http_client(relays, "legacy") as client:
        [text] = _texts(await client.call_tool("relay__ask_model", {}))
    assert text == f"sampling failed: {NOT_AVAILABLE}the MCP client did not declare the sampling capability"
    # A plain call-tool (a chat turn, the CLI) offers no model either.
    answer = relays.call("relay__ask_model")
    assert answer.status_code == 200
    assert f"{NOT_AVAILABLE}the caller of this tool offers no model" in answer.text
