"""`.mcp.json` parsing: file order, formats, expansion and per-entry validation (spec/agent.md §1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workdock.mcp.config import InvalidEntry, ServerSpec, config_paths, expand, load, parse_entry


def write(path: Path, servers: dict | str) -> Path:
    path.write_text(servers if isinstance(servers, str) else json.dumps({"mcpServers": servers}))
    return path


def by_name(entries) -> dict:
    return {e.name: e for e in entries}


def test_first_file_declaring_a_name_wins_and_later_duplicates_are_reported(tmp_path: Path) -> None:
    first = write(tmp_path / "first.json", {"gh": {"command": "first"}})
    second = write(tmp_path / "second.json", {"gh": {"command": "second"}, "db": {"command": "db"}})
    loaded = load([first, second], environ={})
    entries = by_name(loaded.entries)
    assert entries["gh"].command == "first"
    assert entries["gh"].config_file == str(first)
    assert entries["gh"].warnings == (f"also declared in {second} (ignored)",)
    assert entries["db"].command == "db"
    assert [f.state for f in loaded.files] == ["loaded", "loaded"]


def test_file_order_is_config_flags_then_workspace_then_user(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    workspace = tmp_path / "ws"
    extra = tmp_path / "extra.json"
    assert config_paths(workspace, [extra]) == [
        extra.resolve(),
        (workspace / ".mcp.json").resolve(),
        (workspace / ".vscode" / "mcp.json").resolve(),
        (workspace / ".cursor" / "mcp.json").resolve(),
    ]
    assert config_paths(workspace, [], user_config=True)[-1] == (tmp_path / "home" / ".mcp.json").resolve()


def test_missing_file_is_not_an_error_and_bad_json_reports_line_and_column(tmp_path: Path) -> None:
    good = write(tmp_path / "good.json", {"ok": {"command": "ok"}})
    bad = write(tmp_path / "bad.json", '{"mcpServers": {\n  "a": {"command": "x"}\n  "b": {}\n}}')
    loaded = load([tmp_path / "missing.json", bad, good], environ={})
    states = {Path(f.path).name: f for f in loaded.files}
    assert states["missing.json"].state == "missing" and states["missing.json"].error is None
    assert states["bad.json"].state == "invalid"
    assert "line 3, column 3" in states["bad.json"].error
    assert [e.name for e in loaded.entries] == ["ok"]


@pytest.mark.parametrize(
    "raw, transport",
    [
        ({"command": "x"}, "stdio"),
        ({"url": "http://127.0.0.1:1/mcp"}, "http"),
        ({"type": "sse", "url": "http://127.0.0.1:1/sse"}, "sse"),
        ({"type": "streamable-http", "url": "http://127.0.0.1:1/mcp"}, "http"),
        ({"type": "streamableHttp", "url": "http://127.0.0.1:1/mcp"}, "http"),
        ({"type": "http", "url": "http://127.0.0.1:1/mcp", "command": "ignored"}, "http"),
    ],
)
def test_type_inference_and_aliases(raw: dict, transport: str) -> None:
    entry = parse_entry("s", raw, {})
    assert isinstance(entry, ServerSpec) and entry.transport == transport


@pytest.mark.parametrize(
    "name, raw, error",
    [
        ("s", "not an object", "entry must be a JSON object"),
        ("s", {"args": []}, "needs 'command' (stdio) or 'url' (http/sse)"),
        ("s", {"type": "websocket", "url": "ws://x"}, "unknown type 'websocket'"),
        ("s", {"type": "stdio", "url": "http://x"}, "stdio servers need a non-empty 'command'"),
        ("s", {"type": "sse"}, "sse servers need a non-empty 'url'"),
        ("s", {"command": "x", "args": "not a list"}, "'args' must be a list of strings"),
        ("s", {"command": "x", "timeout": -5}, "'timeout' must be a positive whole number"),
        ("s", {"url": "ftp://x"}, "'url' must start with http:// or https://"),
        ("a__b", {"command": "x"}, "may not contain '__'"),
        ("_a", {"command": "x"}, "may not start or end with '_'"),
        ("a_", {"command": "x"}, "may not start or end with '_'"),
        ("a.b", {"command": "x"}, "1 to 64 characters"),
        ("x" * 65, {"command": "x"}, "1 to 64 characters"),
        ("", {"command": "x"}, "1 to 64 characters"),
    ],
)
def test_invalid_entries_fail_alone_with_a_clear_error(tmp_path: Path, name: str, raw, error: str) -> None:
    path = write(tmp_path / ".mcp.json", {name: raw, "fine": {"command": "ok"}})
    entries = by_name(load([path], environ={}).entries)
    assert isinstance(entries[name], InvalidEntry)
    assert error in entries[name].error
    assert isinstance(entries["fine"], ServerSpec)


def test_valid_names_and_fields(tmp_path: Path) -> None:
    entry = parse_entry(
        "My-server_2",
        {
            "command": "run",
            "args": ["a"],
            "env": {"K": "v"},
            "cwd": "sub",
            "timeout": 1500,
            "disabled": True,
            "unknownField": 1,
        },
        {},
    )
    assert isinstance(entry, ServerSpec)
    assert (entry.command, entry.args, dict(entry.env), entry.cwd) == ("run", ("a",), {"K": "v"}, "sub")
    assert entry.timeout_ms == 1500 and entry.disabled is True


def test_expansion_in_command_args_env_url_and_headers() -> None:
    environ = {"BIN": "/opt/bin/srv", "TOKEN": "t0k", "HOST": "127.0.0.1:9", "EMPTY": ""}
    stdio = parse_entry(
        "s",
        {
            "command": "${BIN}",
            "args": ["--token=${TOKEN}", "$TOKEN", "${MISSING:-dflt}"],
            "env": {"A": "${TOKEN}", "B": "${EMPTY:-fallback}"},
        },
        environ,
    )
    assert isinstance(stdio, ServerSpec)
    assert stdio.command == "/opt/bin/srv"
    assert stdio.args == ("--token=t0k", "$TOKEN", "dflt")  # a bare $VAR is left as it is
    assert dict(stdio.env) == {"A": "t0k", "B": "fallback"}  # :- also covers set-but-empty
    http = parse_entry(
        "h", {"url": "http://${HOST}/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}}, environ
    )
    assert isinstance(http, ServerSpec)
    assert http.url == "http://127.0.0.1:9/mcp" and dict(http.headers) == {"Authorization": "Bearer t0k"}
    assert expand("${EMPTY}", environ) == ""  # set but empty, without a default, is just empty


def test_unset_variable_without_default_fails_only_that_server(tmp_path: Path) -> None:
    path = write(
        tmp_path / ".mcp.json",
        {
            "needs": {"url": "${DOCS_URL}/mcp"},
            "hdr": {"url": "http://127.0.0.1:1/mcp", "headers": {"X": "${NOPE_TOKEN}"}},
            "other": {"command": "ok"},
        },
    )
    entries = by_name(load([path], environ={}).entries)
    assert isinstance(entries["needs"], InvalidEntry) and "DOCS_URL" in entries["needs"].error
    assert entries["needs"].transport == "http"
    assert isinstance(entries["hdr"], InvalidEntry) and "NOPE_TOKEN" in entries["hdr"].error
    assert isinstance(entries["other"], ServerSpec)


def test_top_level_shape_errors_make_the_file_invalid(tmp_path: Path) -> None:
    assert (
        load([write(tmp_path / "a.json", "[1]")], environ={}).files[0].error
        == "the top level must be a JSON object"
    )
    assert load([write(tmp_path / "b.json", '{"mcpServers": []}')], environ={}).files[0].state == "invalid"
    assert load([write(tmp_path / "c.json", "{}")], environ={}).files[0].state == "loaded"


def test_specs_compare_equal_regardless_of_where_they_were_declared() -> None:
    a = parse_entry("s", {"command": "x"}, {}, config_file="/one.json")
    b = parse_entry("s", {"command": "x"}, {}, config_file="/two.json")
    c = parse_entry("s", {"command": "x", "args": ["changed"]}, {}, config_file="/one.json")
    assert a == b and a != c


@pytest.mark.parametrize(
    ("written", "ms"), [(30000, 30000), (30000.0, 30000), (1e3, 1000), (120000.0, 120000)]
)
def test_a_timeout_written_as_a_float_is_accepted_when_it_is_whole(written: float, ms: int) -> None:
    entry = parse_entry("s", {"command": "x", "timeout": written}, {})
    assert isinstance(entry, ServerSpec) and entry.timeout_ms == ms and isinstance(entry.timeout_ms, int)


@pytest.mark.parametrize("written", [1.5, 0, 0.0, -5, -1.0, True, False, "30000", [30000], float("nan")])
def test_a_timeout_that_is_not_a_positive_whole_number_is_refused(written: object) -> None:
    entry = parse_entry("s", {"command": "x", "timeout": written}, {})
    assert isinstance(entry, InvalidEntry)
    assert "'timeout' must be a positive whole number of milliseconds" in entry.error


def test_servers_under_another_key_are_warned_about_by_name(tmp_path: Path) -> None:
    # VS Code's .vscode/mcp.json: everything under "servers" (and its "inputs", which are not servers).
    vscode = tmp_path / "mcp.json"
    vscode.write_text(
        json.dumps(
            {
                "inputs": [{"type": "promptString", "id": "token"}],
                "servers": {
                    "github": {"type": "http", "url": "https://api.githubcopilot.com/mcp/"},
                    "fs": {"type": "stdio", "command": "npx", "args": ["-y", "fs-server"]},
                },
            }
        )
    )
    settings = tmp_path / "settings.json"  # VS Code's settings.json nests them under "mcp"
    settings.write_text(json.dumps({"editor.fontSize": 12, "mcp": {"servers": {"one": {"command": "x"}}}}))
    both = tmp_path / "both.json"
    both.write_text(
        json.dumps({"mcpServers": {"a": {"command": "a"}}, "context_servers": {"z": {"url": "http://z"}}})
    )
    plain = write(tmp_path / "plain.json", {"a": {"command": "a"}})
    loaded = load([vscode, settings, both, plain], environ={})
    files = {Path(f.path).name: f for f in loaded.files}
    assert files["mcp.json"].state == "loaded"
    assert files["mcp.json"].warnings == (
        "'servers' holds 2 servers, which are not read: only 'mcpServers' is",
    )
    assert files["settings.json"].warnings == (
        "'mcp.servers' holds 1 server, which is not read: only 'mcpServers' is",
    )
    assert files["both.json"].warnings == (
        "'context_servers' holds 1 server, which is not read: only 'mcpServers' is",
    )
    assert files["plain.json"].warnings == ()
    assert [e.name for e in loaded.entries] == ["a"]


def test_a_pre_registered_oauth_client_is_read_and_its_secret_expanded() -> None:
    raw = {
        "url": "https://mcp.example.com/mcp",
        "oauth": {
            "clientId": "abc",
            "clientSecret": "${SECRET}",
            "scopes": "read write",
            "callbackPort": 8080,
        },
    }
    spec = parse_entry("hosted", raw, {"SECRET": "s3cret"})
    assert isinstance(spec, ServerSpec) and spec.oauth is not None
    assert (spec.oauth.client_id, spec.oauth.client_secret) == ("abc", "s3cret")
    assert spec.oauth.scopes == ("read", "write") and spec.oauth.callback_port == 8080
    assert "s3cret" not in repr(spec)  # never shown, whoever prints the spec
    listed = parse_entry("hosted", {**raw, "oauth": {"clientId": "abc", "scopes": ["a", "b"]}}, {})
    assert isinstance(listed, ServerSpec) and listed.oauth is not None and listed.oauth.scopes == ("a", "b")


@pytest.mark.parametrize(
    ("oauth", "error"),
    [
        ("abc", "'oauth' must be an object"),
        ({"clientId": 3}, "'oauth.clientId' must be a non-empty string"),
        ({"clientSecret": "x"}, "'oauth.clientSecret' needs 'oauth.clientId'"),
        ({"callbackPort": 70000}, "'oauth.callbackPort' must be a port number"),
        ({"callbackPort": True}, "'oauth.callbackPort' must be a port number"),
        ({"scopes": [1]}, "'oauth.scopes' must be a list of strings"),
    ],
)
def test_a_bad_oauth_entry_fails_that_server_alone(oauth: object, error: str) -> None:
    entry = parse_entry("hosted", {"url": "https://mcp.example.com/mcp", "oauth": oauth}, {})
    assert isinstance(entry, InvalidEntry) and entry.error.startswith(error)
