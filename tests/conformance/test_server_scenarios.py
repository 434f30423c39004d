"""The official MCP conformance suite's server scenarios, run against a real agent's ``/mcp``.

The agent fronts the suite's own reference server (its ``everything-server.ts`` of the same
release, vendored as ``fixtures/servers/conformance_everything_server.ts``, over streamable HTTP)
through ``/mcp/reference``, the one-server view (``--only``): every scenario a transparent proxy
can pass must pass, and the ones it cannot
(``server_expected_failures.yml``, with why in the README) must fail, so the list stays true.
The suite's client sends no token, so it reaches the agent through a loopback forwarder that
adds it, as a configured MCP client would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tests.conformance.test_client_scenarios import CONFORMANCE, PRELOAD, node_22
from tests.support.agent import TOKEN, RunningAgent, write_config
from tests.support.bearer_forwarder import bearer_forwarder
from tests.support.everything import start_conformance_server
from tests.support.helpers import require

pytestmark = pytest.mark.anyio

BASELINE = Path(__file__).with_name("server_expected_failures.yml")


@pytest.mark.timeout(600)
async def test_conformance_server_scenarios_through_the_agent(
    workspace_dir: Path, tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    require(CONFORMANCE.exists(), f"{CONFORMANCE} is missing: run `npm ci` in tests/ (scripts/test does)")
    node = node_22()
    url = start_conformance_server(spawn, node, tmp_path / "reference.log")
    write_config(workspace_dir / ".mcp.json", {"reference": {"type": "http", "url": url}})
    agent = RunningAgent(workspace_dir, tmp_path / "agent.log")
    try:
        agent.wait_state("reference", "ready", timeout=60)
        run = await _run_suite(agent, node, tmp_path / "results")
    finally:
        agent.stop()
    output = (run.stdout + run.stderr).decode(errors="replace")
    failing: set[str] = set()
    passed: set[str] = set()
    for checks_file in (tmp_path / "results").glob("**/checks.json"):
        checks = json.loads(checks_file.read_text())
        # the folder is server-<scenario>-<timestamp>
        scenario = re.sub(r"-\d{4}-\d\d-\d\dT.*$", "", checks_file.parent.name.removeprefix("server-"))
        if any(c["status"] == "FAILURE" for c in checks):
            failing.add(scenario)
        else:
            passed.add(scenario)
    expected = {
        line.strip().removeprefix("- ")
        for line in BASELINE.read_text().splitlines()
        if line.startswith("  - ")
    }
    # what a proxy must carry: progress, elicitation both ways, schemas, every content kind, Origin
    must_pass = {
        "tools-call-with-progress",
        "tools-call-elicitation",
        "tools-call-mixed-content",
        "resources-templates-read",
        "prompts-get-with-image",
        "dns-rebinding-protection",
    }
    assert must_pass <= passed, f"passed {sorted(passed)}\n{output[-4000:]}"
    assert failing == expected, f"failing {sorted(failing)}, expected {sorted(expected)}\n{output[-6000:]}"
    assert run.returncode == 0, output[-6000:]


async def _run_suite(agent: RunningAgent, node: str, results: Path) -> subprocess.CompletedProcess[bytes]:
    options = f'{os.environ.get("NODE_OPTIONS", "")} --require "{PRELOAD}" --no-deprecation'
    env = {**os.environ, "NODE_OPTIONS": options.strip()}
    async with bearer_forwarder(agent.url, TOKEN) as url:
        command = [
            node,
            str(CONFORMANCE),
            "server",
            "--url",
            f"{url}/mcp/reference",
            "--expected-failures",
            str(BASELINE),
            "-o",
            str(results),
        ]
        with anyio.fail_after(540):
            return await anyio.run_process(command, env=env, check=False)
