"""VS Code's `.vscode/mcp.json` and Cursor's `.cursor/mcp.json` are read beside `.mcp.json`, each
server coming up under a real agent.

The files below are written in the shape of real ones (VS Code's documented format: comments,
trailing commas, `inputs` with a password prompt, `envFile`, `${env:...}`, `${workspaceFolder}`;
Cursor's `mcpServers` with `${env:...}`), not copied from a repository.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.agent.test_cli import workdock
from tests.support.agent import TOKEN, RunningAgent
from tests.support.helpers import FIXTURES

PRINT_ENV = str(FIXTURES / "print_env.py")
TIME_SERVER = str(Path(sys.executable).parent / "mcp-server-time")
SECRET = "pplx-0123456789abcdef"

VSCODE_FILE = """\
{
  // Tools for working on this repository in Copilot's agent mode.
  "inputs": [
    {
      "type": "promptString",
      "id": "perplexity-key",
      "description": "Perplexity API Key",
      "password": true,
    },
  ],
  "servers": {
    /* a local server: its settings come from the repo's .env */
    "repo-tools": {
      "type": "stdio",
      "command": "%(python)s",
      "args": ["%(print_env)s", "--root=${workspaceFolder}", "--home=${userHome}"],
      "envFile": "${workspaceFolder}/.env",
      "env": {"REGION": "${env:TEST_REGION}"},
      "dev": {"watch": "src/**/*.py", "debug": {"type": "python"}},
    },
    "perplexity": {
      "type": "stdio",
      "command": "%(python)s",
      "args": ["%(print_env)s"],
      "env": {"PERPLEXITY_API_KEY": "${input:perplexity-key}"},
    },
    "everything": {
      "type": "http",
      "url": "%(everything)s",
      "gallery": true,  // installed from the gallery: metadata only
    },
  },
}
"""


def environment_of(agent: RunningAgent, server: str) -> dict[str, Any]:
    response = agent.call(f"{server}__environment")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = json.loads(response.json()["content"][0]["text"])
    return result


def write_vscode(workspace: Path, everything_url: str) -> Path:
    (workspace / ".vscode").mkdir()
    path = workspace / ".vscode" / "mcp.json"
    path.write_text(
        VSCODE_FILE % {"python": sys.executable, "print_env": PRINT_ENV, "everything": everything_url}
    )
    (workspace / ".env").write_text(
        "# local settings\nDB_URL=postgres://localhost/dev\nexport MODE='debug'\n"
    )
    return path


def test_a_vscode_file_with_comments_inputs_and_an_env_file(
    start_agent, workspace_dir: Path, everything_http_url: str
) -> None:
    write_vscode(workspace_dir, everything_http_url)
    agent = start_agent(None, env={"TEST_REGION": "eu-west-1"})
    tools = agent.wait_state("repo-tools", "ready")
    agent.wait_state("everything", "ready")
    assert any("'dev'" in w for w in tools["warnings"]), tools["warnings"]
    seen = environment_of(agent, "repo-tools")
    assert seen["argv"] == [f"--root={workspace_dir.resolve()}", f"--home={Path.home()}"]
    assert seen["env"]["REGION"] == "eu-west-1"
    assert seen["env"]["DB_URL"] == "postgres://localhost/dev" and seen["env"]["MODE"] == "debug"

    # ${input:...} waits for the user: named, with its prompt, never started until given.
    waiting = agent.wait_state("perplexity", "needs_input")
    assert waiting["inputs"] == [
        {
            "id": "perplexity-key",
            "description": "Perplexity API Key",
            "password": True,
            "env": "WORKDOCK_INPUT_PERPLEXITY_KEY",
            "options": [],
            "default": None,
        }
    ]
    assert "WORKDOCK_INPUT_PERPLEXITY_KEY" in waiting["error"]
    assert not any("perplexity__" in n for n in agent.tool_names())

    status = workdock("status", env={"WORKDOCK_AGENT_TOKEN": TOKEN, "WORKDOCK_AGENT_URL": agent.url})
    assert (
        "needs input perplexity-key (Perplexity API Key): set WORKDOCK_INPUT_PERPLEXITY_KEY" in status.stdout
    )

    given = agent.http.post("/api/v0/mcp/inputs", json={"id": "perplexity-key", "value": SECRET})
    assert given.status_code == 200, given.text
    assert given.json() == {"servers": ["perplexity"]}
    agent.wait_state("perplexity", "ready")
    assert environment_of(agent, "perplexity")["env"]["PERPLEXITY_API_KEY"] == SECRET
    # A password input is never shown or logged.
    assert SECRET not in agent.http.get("/api/v0/mcp/servers").text
    assert SECRET not in agent.log()


def test_an_input_comes_from_the_environment(
    start_agent, workspace_dir: Path, everything_http_url: str
) -> None:
    write_vscode(workspace_dir, everything_http_url)
    agent = start_agent(None, env={"TEST_REGION": "x", "WORKDOCK_INPUT_PERPLEXITY_KEY": SECRET})
    agent.wait_state("perplexity", "ready")
    assert environment_of(agent, "perplexity")["env"]["PERPLEXITY_API_KEY"] == SECRET


PICK_FILE = """\
{
  "inputs": [
    {
      "type": "pickString",
      "id": "region",
      "description": "Deployment region",
      "options": [{"label": "Europe", "value": "eu-west-1"}, "us-east-1"],
      "default": "us-east-1",
    },
  ],
  "servers": {
    "deploy": {"command": "%(python)s", "args": ["%(print_env)s"], "env": {"REGION": "${input:region}"}},
  },
}
"""


def test_a_pick_string_input_offers_its_choices_and_takes_only_those(
    start_agent, workspace_dir: Path
) -> None:
    (workspace_dir / ".vscode").mkdir()
    (workspace_dir / ".vscode" / "mcp.json").write_text(
        PICK_FILE % {"python": sys.executable, "print_env": PRINT_ENV}
    )
    agent = start_agent(None)
    waiting = agent.wait_state("deploy", "needs_input")
    assert waiting["inputs"] == [
        {
            "id": "region",
            "description": "Deployment region",
            "password": False,
            "env": "WORKDOCK_INPUT_REGION",
            "options": ["eu-west-1", "us-east-1"],
            "default": "us-east-1",
        }
    ]
    assert not any("asked as text" in w for w in waiting["warnings"]), waiting["warnings"]
    wrong = agent.http.post("/api/v0/mcp/inputs", json={"id": "region", "value": "mars-1"})
    assert wrong.status_code == 400, wrong.text
    assert wrong.json()["message"] == "input 'region' must be one of: eu-west-1, us-east-1"
    assert (
        agent.http.post("/api/v0/mcp/inputs", json={"id": "region", "value": "eu-west-1"}).status_code == 200
    )
    agent.wait_state("deploy", "ready")
    assert environment_of(agent, "deploy")["env"]["REGION"] == "eu-west-1"


def test_a_pick_string_value_from_the_environment_must_be_a_choice(start_agent, workspace_dir: Path) -> None:
    (workspace_dir / ".vscode").mkdir()
    (workspace_dir / ".vscode" / "mcp.json").write_text(
        PICK_FILE % {"python": sys.executable, "print_env": PRINT_ENV}
    )
    agent = start_agent(None, env={"WORKDOCK_INPUT_REGION": "mars-1"})
    failed = agent.wait_state("deploy", "failed")
    assert "input 'region' is 'mars-1', which is not one of: eu-west-1, us-east-1" in failed["error"]


def test_bad_input_requests_are_clear_4xx(start_agent, workspace_dir: Path, everything_http_url: str) -> None:
    write_vscode(workspace_dir, everything_http_url)
    agent = start_agent(None, env={"TEST_REGION": "x"})
    agent.wait_state("perplexity", "needs_input")
    unknown = agent.http.post("/api/v0/mcp/inputs", json={"id": "nobody-asks", "value": "v"})
    assert unknown.status_code == 404 and "nobody-asks" in unknown.json()["message"]
    for body in ({"id": "perplexity-key"}, {"id": "perplexity-key", "value": 3}, [1]):
        bad = agent.http.post("/api/v0/mcp/inputs", json=body)
        assert bad.status_code == 400, bad.text
        assert set(bad.json()) == {"message", "detail"}
    too_long = agent.http.post("/api/v0/mcp/inputs", json={"id": "perplexity-key", "value": "x" * 70_000})
    assert too_long.status_code == 400


def test_a_jsonc_error_names_its_line_and_column(start_agent, workspace_dir: Path) -> None:
    (workspace_dir / ".vscode").mkdir()
    (workspace_dir / ".vscode" / "mcp.json").write_text(
        '{\n  // comment\n  "servers": {\n    "a": {"command": "x"}\n    "b": {"command": "y"}\n  }\n}\n'
    )
    agent = start_agent({})
    files = agent.wait_for(
        lambda: {f["path"]: f for f in agent.http.get("/api/v0/mcp/servers").json()["config_files"]},
        10,
        "the config files",
    )
    status = files[str((workspace_dir / ".vscode" / "mcp.json").resolve())]
    assert status["state"] == "invalid"
    assert status["error"].startswith("line 5, column 5:"), status["error"]


def test_a_cursor_file_and_claude_project_dir(start_agent, workspace_dir: Path) -> None:
    (workspace_dir / ".cursor").mkdir()
    (workspace_dir / ".cursor" / "mcp.json").write_text(
        json.dumps(
            {
                "mcpServers": {
                    "time": {"command": TIME_SERVER, "args": ["--local-timezone", "${env:LOCAL_TZ}"]},
                    "project": {"command": "does-not-run", "args": []},
                }
            },
            indent=2,
        )
    )
    agent = start_agent(
        {"project": {"command": sys.executable, "args": [PRINT_ENV, "${CLAUDE_PROJECT_DIR}/data"]}},
        env={"LOCAL_TZ": "Europe/Paris"},
    )
    agent.wait_state("time", "ready")
    answer = agent.call("time__get_current_time", {"timezone": "Europe/Paris"})
    assert answer.status_code == 200 and "Europe/Paris" in answer.text
    # .mcp.json comes first: its "project" wins, the Cursor one is a warning on it.
    project = agent.wait_state("project", "ready")
    assert project["config_file"] == str((workspace_dir / ".mcp.json").resolve())
    assert any(".cursor" in w and "ignored" in w for w in project["warnings"])
    assert environment_of(agent, "project")["argv"] == [f"{workspace_dir.resolve()}/data"]


def test_a_vscode_file_made_later_is_read(start_agent, workspace_dir: Path, everything_http_url: str) -> None:
    agent = start_agent({})
    write_vscode(workspace_dir, everything_http_url)
    agent.wait_state("everything", "ready", timeout=20)
