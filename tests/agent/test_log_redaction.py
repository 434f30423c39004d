"""The agent's log and status never show a secret: a server URL's token, credentials a server prints."""

from __future__ import annotations

import socket
import sys

from tests.support.agent import RunningAgent

LEAKY = (
    "import sys; sys.stderr.write('retrying with Authorization: Bearer printed-secret-5be07c\\n'); "
    "sys.exit(3)"
)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_secrets_in_urls_and_in_a_servers_stderr_are_not_logged_in_the_clear(start_agent) -> None:
    url = f"http://127.0.0.1:{closed_port()}/mcp?api_key=query-secret-4f1c9a"
    agent: RunningAgent = start_agent(
        {
            "hosted": {
                "type": "http",
                "url": url,
                "headers": {"Authorization": "Bearer header-secret-77d2e0"},
            },
            "leaky": {"command": sys.executable, "args": ["-c", LEAKY]},
        },
        "--verbose",  # the servers' stderr goes to the log
    )
    hosted = agent.wait_state("hosted", "failed")
    leaky = agent.wait_state("leaky", "failed")
    assert "retrying with Authorization: Bearer [redacted]" in leaky["stderr_tail"]  # nor in status
    agent.wait_for(lambda: "retrying with Authorization" in agent.log(), 10, "the stderr line in the log")
    log = agent.log()
    for secret in ("query-secret-4f1c9a", "header-secret-77d2e0", "printed-secret-5be07c"):
        assert secret not in log, log
    assert "query-secret-4f1c9a" not in hosted["error"]
    assert "Bearer [redacted]" in log
