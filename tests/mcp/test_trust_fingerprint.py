"""What an approval covers (workdock.mcp.trust): a changed command line, URL or non-secret env
value asks again; a rotated secret does not; the line shown never carries a secret's value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workdock.mcp.config import Expansion, HeldEntry, ServerSpec, parse_entry

BASE: dict[str, Any] = {
    "command": "npx",
    "args": ["-y", "@acme/server", "--root", "${workspaceFolder}"],
    "env": {"ACME_TOKEN": "tok-1", "NODE_OPTIONS": "--max-old-space-size=512"},
}


def fingerprint(raw: dict[str, Any], workspace: str = "/repo", file: str = "/repo/.mcp.json") -> str:
    entry = parse_entry("acme", raw, Expansion({}, workspace=Path(workspace)), file)
    assert entry.origin is not None
    return entry.origin.fingerprint


def test_what_asks_again_and_what_does_not() -> None:
    base = fingerprint(BASE)
    assert fingerprint({**BASE, "env": {**BASE["env"], "ACME_TOKEN": "tok-2"}}) == base  # rotated secret
    assert fingerprint({**BASE, "args": [*BASE["args"], "--write"]}) != base
    assert fingerprint({**BASE, "command": "uvx"}) != base
    assert fingerprint({**BASE, "env": {**BASE["env"], "NODE_OPTIONS": "--require ./evil.js"}}) != base
    assert fingerprint({**BASE, "env": {**BASE["env"], "EXTRA": "1"}}) != base
    assert fingerprint(BASE, file="/repo/.vscode/mcp.json") != base
    assert fingerprint(BASE, workspace="/other", file="/repo/.mcp.json") != base  # the path expanded
    http = {"url": "https://x.example/mcp", "headers": {"Authorization": "Bearer a"}}
    assert fingerprint({**http, "headers": {"Authorization": "Bearer b"}}) == fingerprint(http)
    assert fingerprint({**http, "url": "https://y.example/mcp"}) != fingerprint(http)


def test_the_launch_line_names_env_and_headers_but_never_their_values() -> None:
    entry = parse_entry("acme", BASE, Expansion({}, workspace=Path("/repo")), "/repo/.mcp.json")
    assert entry.origin is not None
    assert entry.origin.launch == "npx -y @acme/server --root /repo (env: ACME_TOKEN, NODE_OPTIONS)"
    http = parse_entry("h", {"url": "https://x/mcp", "headers": {"Authorization": "Bearer sekrit"}}, {})
    assert http.origin is not None and "sekrit" not in http.origin.launch
    assert http.origin.launch == "https://x/mcp (headers: Authorization)"


def test_inputs_and_editor_variables() -> None:
    context = Expansion({"REGION": "eu"}, workspace=Path("/repo"))
    raw = {"command": "srv", "args": ["${env:REGION}", "${userHome}", "${CLAUDE_PROJECT_DIR}"]}
    spec = parse_entry("s", raw, context)
    assert isinstance(spec, ServerSpec)
    assert spec.args == ("eu", str(Path.home()), "/repo")
    held = parse_entry("s", {"command": "srv", "env": {"K": "${input:key}"}}, context)
    assert isinstance(held, HeldEntry) and held.state == "needs_input"
    assert [i.env_name for i in held.inputs] == ["WORKDOCK_INPUT_KEY"]
    given = parse_entry(
        "s", {"command": "srv", "env": {"K": "${input:key}"}}, Expansion({}, inputs={"key": "v"})
    )
    assert isinstance(given, ServerSpec) and given.env == {"K": "v"}
    assert given.origin == held.origin  # the value given is not part of what was approved
