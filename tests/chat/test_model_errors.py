"""A failed model call is told in one line naming the model, its endpoint and what to check, in the
stream's error chunk, the stored error part and `workdock chat`; the traceback goes to the server's
log only with -v. Against the scripted OpenAI-compatible server, and a port nothing listens on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chat.conftest import MODEL, Api, ChatServer
from tests.chat.fake_openai import Fail, FakeOpenAI
from tests.chat.test_cli_chat import run_chat
from tests.chat.test_turn_e2e import new_chat, turn_ended
from tests.support.agent import RunningAgent
from tests.support.helpers import free_port

pytestmark = pytest.mark.anyio


async def failed_turn(server: ChatServer, agent: RunningAgent) -> tuple[str, str]:
    """Run one turn that fails; (the stream's error text, the stored error part's text)."""
    api = Api(server.url, server.admin_token)
    try:
        chat_id = await new_chat(api, agent.url)
        await api.post(f"/chats/{chat_id}/messages", {"content": "hello"}, expect=202)
        events = await api.events(chat_id, turn_ended(), timeout=60)
        [error] = [e["errorText"] for _, e in events if e["type"] == "error"]
        assert (await api.get(f"/chats/{chat_id}"))["status"] == "error"
        stored = (await api.messages(chat_id))[-1]["parts"]
        assert [p["type"] for p in stored] == ["error"]
        return error, stored[0]["text"]
    finally:
        await api.aclose()


def assert_one_plain_line(text: str) -> None:
    assert "\n" not in text
    for raw in ("Traceback", "ModelHTTPError", "ModelAPIError", "status_code:", "model_name:"):
        assert raw not in text


@pytest.mark.parametrize(
    ("fail", "says"),
    [
        (
            Fail(400, "'tools' is not supported by this model"),
            "rejected the request (HTTP 400: 'tools' is not supported by this model): check that the "
            "endpoint serves this model and that the model takes tool calls",
        ),
        (
            Fail(
                401,
                "Incorrect API key provided: sk-te***",
                type="invalid_request_error",
                code="invalid_api_key",
            ),
            "refused the credentials (HTTP 401: Incorrect API key provided: sk-te***): check OPENAI_API_KEY",
        ),
        (
            Fail(500, "The server had an error while processing your request", type="server_error"),
            "failed on its side (HTTP 500: The server had an error while processing your request): "
            "try again later, or see the endpoint's own log",
        ),
    ],
)
async def test_a_provider_error_names_the_model_the_endpoint_and_what_to_check(
    start_chat_server: Callable[..., ChatServer],
    fake_model: FakeOpenAI,
    start_agent: Callable[..., RunningAgent],
    tmp_path: Path,
    fail: Fail,
    says: str,
) -> None:
    fake_model.default = fail  # the provider's client retries a 500: every attempt fails alike
    server = start_chat_server(subprocess_mode=True, log_path=tmp_path / "server.log")
    agent = start_agent({})
    streamed, stored = await failed_turn(server, agent)
    assert streamed == stored == f"model {MODEL} at {fake_model.url} {says}"
    assert_one_plain_line(streamed)
    log = (tmp_path / "server.log").read_text()
    assert says in log and "Traceback" not in log  # the traceback is for -v only

    terminal = run_chat(server, "--message", "hello again")
    assert terminal.returncode == 1
    assert f"error: model {MODEL} at {fake_model.url} " in terminal.stdout
    assert "Traceback" not in terminal.stdout + terminal.stderr


async def test_an_endpoint_nothing_listens_on_is_named_with_the_setting_to_check(
    start_chat_server: Callable[..., ChatServer], start_agent: Callable[..., RunningAgent], tmp_path: Path
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/v1"
    server = start_chat_server(
        env={"OPENAI_BASE_URL": nowhere}, subprocess_mode=True, log_path=tmp_path / "server.log", args=("-v",)
    )
    streamed, stored = await failed_turn(server, start_agent({}))
    assert streamed == stored
    assert streamed.startswith(f"model {MODEL} at {nowhere} could not be reached (")
    assert streamed.endswith("): check that it is running and that OPENAI_BASE_URL is right")
    assert "Connection refused" in streamed or "connection attempts failed" in streamed.lower()
    assert_one_plain_line(streamed)
    assert "Traceback" in (tmp_path / "server.log").read_text()  # with -v, the whole story is in the log
