"""`workdock resources | read | prompts | prompt` against a running agent."""

from __future__ import annotations

import json

import pytest

from tests.agent.test_cli import client_env, workdock
from tests.support.agent import RunningAgent, fixture_server


@pytest.fixture
def agent(start_agent) -> RunningAgent:
    agent = start_agent({"fx": fixture_server("offerings.py")})
    agent.wait_state("fx", "ready")
    return agent


def test_resources_lists_uris_and_templates_and_json(agent: RunningAgent) -> None:
    table = workdock("resources", env=client_env(agent))
    assert table.returncode == 0, table.stderr
    assert "6 resources, 1 templates" in table.stdout
    assert "fixture://doc/5" in table.stdout and "fixture://note/{name}" in table.stdout
    assert "application/octet-stream" in table.stdout
    raw = json.loads(workdock("resources", "--json", env=client_env(agent)).stdout)
    assert (
        len(raw["resources"]) == 6 and raw["resource_templates"][0]["uri_template"] == "fixture://note/{name}"
    )


def test_resources_table_fits_a_narrow_terminal(agent: RunningAgent) -> None:
    table = workdock("resources", env={**client_env(agent), "COLUMNS": "80"})
    assert table.returncode == 0, table.stderr
    assert all(len(line) <= 80 for line in table.stdout.splitlines()), table.stdout


def test_read_prints_text_and_names_binary_and_fails_clearly(agent: RunningAgent) -> None:
    text = workdock("read", "fixture://doc/2", env=client_env(agent))
    assert text.returncode == 0 and text.stdout.strip() == "document 2"
    blob = workdock("read", "fixture://blob", "--server", "fx", env=client_env(agent))
    assert blob.returncode == 0 and "application/octet-stream, 16 bytes" in blob.stdout
    raw = json.loads(workdock("read", "fixture://note/x", "--json", env=client_env(agent)).stdout)
    assert raw["contents"][0]["text"] == "note x"
    missing = workdock("read", "fixture://doc/99", "--server", "fx", env=client_env(agent))
    assert missing.returncode != 0 and "fixture://doc/99" in missing.stderr


def test_prompts_and_prompt_with_arguments(agent: RunningAgent) -> None:
    table = workdock("prompts", env={**client_env(agent), "COLUMNS": "100"})
    assert table.returncode == 0, table.stderr
    assert "fx__greet" in table.stdout and "name*" in table.stdout and "fx__review_code" in table.stdout
    assert all(len(line) <= 100 for line in table.stdout.splitlines())
    got = workdock("prompt", "fx__greet", "-a", "name=Ada Lovelace", env=client_env(agent))
    assert got.returncode == 0, got.stderr
    assert "user:" in got.stdout and "Hello, Ada Lovelace!" in got.stdout
    raw = json.loads(
        workdock("prompt", "fx__review_code", "-a", "lang=go", "--json", env=client_env(agent)).stdout
    )
    assert raw["messages"][0]["content"]["text"] == "Review this go code."
    bad = workdock("prompt", "fx__greet", "-a", "novalue", env=client_env(agent))
    assert bad.returncode != 0 and "key=value" in bad.stderr
    unknown = workdock("prompt", "fx__nope", env=client_env(agent))
    assert unknown.returncode != 0 and "fx__nope" in unknown.stderr
