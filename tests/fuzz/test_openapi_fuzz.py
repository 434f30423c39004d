"""Both servers, as real processes, against their own OpenAPI documents (schemathesis).

Every operation gets a bounded number of generated requests (examples, coverage, fuzzing, and
stateful sequences along the links schemathesis infers), authenticated. A 5xx, a status the
document does not list, or a body that does not match the documented schema fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest

from tests.chat.conftest import ChatServer
from tests.support.agent import TOKEN, RunningAgent
from tests.support.helpers import TESTS

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
EXAMPLES_PER_OPERATION = 15
SEED = 20261201  # reproducible runs; change it to explore further


def run_schemathesis(base_url: str, token: str, report: Path, *extra: str) -> None:
    st = Path(sys.executable).parent / "st"
    command = [
        str(st),
        "run",
        f"{base_url}/openapi.json",
        "--url",
        base_url,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        str(SEED),
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
        *extra,
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks",
        "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")]),
    }
    with open(report, "wb") as out:
        result = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=report.parent, timeout=900
        )
    text = report.read_text(errors="replace")
    assert result.returncode == 0, f"schemathesis found problems (exit {result.returncode}):\n{text[-20000:]}"


@pytest.mark.timeout(600)
def test_the_agent_answers_as_its_openapi_document_says(
    start_agent: Callable[..., RunningAgent], tmp_path: Path
) -> None:
    agent = start_agent({}, env={"WORKDOCK_AUTH_FAILURE_LIMIT": "0"})
    run_schemathesis(agent.url, TOKEN, tmp_path / "schemathesis-agent.txt")


@pytest.mark.timeout(600)
def test_the_chat_server_answers_as_its_openapi_document_says(
    start_chat_server: Callable[..., ChatServer], tmp_path: Path
) -> None:
    server = start_chat_server(subprocess_mode=True, env={"WORKDOCK_AUTH_FAILURE_LIMIT": "0"})
    # Authenticated by a session of the admin's: the fuzzer finds API token ids (and deletes them,
    # its own among them), but no answer carries a session's id.
    session = httpx2.post(
        f"{server.url}/api/v0/session", headers={"Authorization": f"Bearer {server.admin_token}"}
    ).cookies["workdock_session"]
    # The event stream never ends by itself: tests/chat/test_stream.py covers it.
    run_schemathesis(
        server.url,
        session,
        tmp_path / "schemathesis-chat.txt",
        "--exclude-path",
        "/api/v0/chats/{chat_id}/stream",
    )
