"""What a workspace child sees: the agent's environment without the agent's token, for stdio
servers as for `/exec` commands, and a `.mcp.json` cannot pass the token on by `${...}`."""

from __future__ import annotations

import json
from typing import Any

from tests.support.agent import TOKEN, fixture_server


def shown(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return json.loads(response.json()["content"][0]["text"])


def test_stdio_servers_and_commands_do_not_get_the_agent_token(start_agent) -> None:
    entry = fixture_server("print_env.py", FROM_ENTRY="entry-value")
    entry["args"] += ["--token=${WORKDOCK_AGENT_TOKEN:-withheld}"]
    agent = start_agent({"env": entry}, env={"USER_SETTING": "kept", "OPENAI_API_KEY": "sk-the-users-own"})
    agent.wait_state("env", "ready")
    seen = shown(agent.call("env__environment"))
    assert seen["env"]["USER_SETTING"] == "kept" and seen["env"]["FROM_ENTRY"] == "entry-value"
    # A standalone agent keeps the user's own environment: only its token is withheld.
    assert seen["env"]["OPENAI_API_KEY"] == "sk-the-users-own"
    assert "WORKDOCK_AGENT_TOKEN" not in seen["env"]
    assert TOKEN not in json.dumps(seen)
    assert seen["argv"][-1] == "--token=withheld"

    command = agent.http.post("/api/v0/exec", json={"command": "env"})
    assert command.status_code == 200, command.text
    output = command.json()["output"]
    assert "USER_SETTING=kept" in output
    assert "WORKDOCK_AGENT_TOKEN" not in output and TOKEN not in output
