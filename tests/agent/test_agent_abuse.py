"""The agent as an attacker meets it: token guessing is answered 429, the scheme is taken in any
case, bodies are bounded, and strings that are not Unicode are a 400 (spec/agent.md section 4)."""

from __future__ import annotations

import httpx2

from tests.support.agent import TOKEN, fixture_server


def test_token_guessing_is_answered_429_after_ten_failures(start_agent) -> None:
    agent = start_agent({"slow": fixture_server("slow_tool.py")})
    agent.wait_state("slow", "ready")
    call = {"tool_name": "slow__echo", "arguments": {"text": "hi"}}
    with httpx2.Client(base_url=agent.url) as http:

        def guess(n: int, token: str) -> httpx2.Response:
            # A forwarded address does not help a guesser: no proxy is believed by the agent.
            headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": f"203.0.113.{n}"}
            if n % 2:  # the plain call-tool (answered by the agent's HTTP protocol when admitted)
                return http.post("/api/v0/mcp/call-tool", json=call, headers=headers)
            return http.get("/api/v0/mcp/tools", headers=headers)

        assert guess(1, TOKEN).status_code == guess(2, TOKEN).status_code == 200
        codes = [guess(n, f"guess-{n}").status_code for n in range(11)]
        assert codes == [401] * 10 + [429]
        # The right token does not lift the block early, on either path.
        for n in (0, 1):
            blocked = guess(n, TOKEN)
            assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0, n
            assert set(blocked.json()) == {"message", "detail"}
        assert http.get("/healthz").status_code == 200  # the probe stays open


def test_the_limit_and_window_are_configurable(start_agent) -> None:
    agent = start_agent({}, env={"WORKDOCK_AUTH_FAILURE_LIMIT": "2", "WORKDOCK_AUTH_FAILURE_WINDOW": "300"})
    with httpx2.Client(base_url=agent.url, headers={"Authorization": "Bearer wrong"}) as http:
        codes = [http.get("/api/v0/mcp/servers").status_code for _ in range(3)]
        assert codes == [401, 401, 429]
        assert 290 <= int(http.get("/api/v0/mcp/servers").headers["retry-after"]) <= 300


def test_the_bearer_scheme_is_taken_in_any_case(start_agent) -> None:
    agent = start_agent({})
    for scheme in ("bearer", "BEARER", "BeArEr"):
        answer = httpx2.get(f"{agent.url}/api/v0/mcp/tools", headers={"Authorization": f"{scheme} {TOKEN}"})
        assert answer.status_code == 200, scheme
    wrong = httpx2.get(f"{agent.url}/api/v0/mcp/tools", headers={"Authorization": f"Basic {TOKEN}"})
    assert wrong.status_code == 401


def test_request_bodies_are_bounded(start_agent, workspace_dir) -> None:
    agent = start_agent({}, env={"WORKDOCK_AGENT_MAX_REQUEST_BYTES": str(1024 * 1024)})
    big = {"path": "big.txt", "content": "x" * (900 * 1024)}
    assert agent.http.post("/api/v0/fs/write", json=big).status_code == 200
    too_big = {"path": "huge.txt", "content": "x" * (1100 * 1024)}
    answer = agent.http.post("/api/v0/fs/write", json=too_big)
    assert answer.status_code == 413 and "1048576 bytes" in answer.json()["detail"]

    def chunks():  # no Content-Length: counted while it is read
        yield b'{"path": "chunked.txt", "content": "'
        for _ in range(20):
            yield b"y" * (64 * 1024)
        yield b'"}'

    answer = agent.http.post(
        "/api/v0/fs/write", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["message"] == "request body too large"
    assert not (workspace_dir / "huge.txt").exists() and not (workspace_dir / "chunked.txt").exists()


def test_the_default_body_limit_takes_large_files(start_agent, workspace_dir) -> None:
    agent = start_agent({})
    content = "z" * (20 * 1024 * 1024)
    assert (
        agent.http.post("/api/v0/fs/write", json={"path": "large.txt", "content": content}).status_code == 200
    )
    assert (workspace_dir / "large.txt").stat().st_size == len(content)


def test_lone_surrogates_are_a_400_in_every_string(start_agent, workspace_dir) -> None:
    agent = start_agent({})
    (workspace_dir / "a.txt").write_text("hello\n")
    for path, body in (
        ("/api/v0/fs/write", b'{"path": "s.txt", "content": "\\ud800"}'),
        ("/api/v0/fs/write", b'{"path": "\\udfff.txt", "content": "x"}'),
        ("/api/v0/fs/edit", b'{"path": "a.txt", "edits": [{"old": "hello", "new": "\\ud800"}]}'),
        ("/api/v0/fs/read", b'{"path": "\\ud800"}'),
        ("/api/v0/exec", b'{"command": "echo \\ud800"}'),
        ("/api/v0/mcp/call-tool", b'{"tool_name": "x__y", "arguments": {"s": "\\ud800"}}'),
    ):
        answer = agent.http.post(path, content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 400, (path, answer.text)
        assert "JSON" in answer.json()["message"], answer.json()
    assert (workspace_dir / "a.txt").read_text() == "hello\n"
    assert not (workspace_dir / "s.txt").exists()
    # A proper pair (an astral character) is fine.
    ok = agent.http.post(
        "/api/v0/fs/write",
        content=b'{"path": "s.txt", "content": "\\ud83d\\ude00"}',
        headers={"Content-Type": "application/json"},
    )
    assert ok.status_code == 200 and (workspace_dir / "s.txt").read_text() == "😀"


def test_the_openapi_document_tells_the_truth(start_agent) -> None:
    agent = start_agent({})
    document = agent.http.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            ok = responses.get("200", {}).get("content", {}).get("application/json", {}).get("schema")
            if ok is not None:
                assert ok != {"type": "string"}, (method, path)
            if path != "/healthz":
                assert {"401", "429"} <= set(responses), (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    write = document["paths"]["/api/v0/fs/write"]["post"]["responses"]
    assert {"400", "413", "507"} <= set(write)
    assert write["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/WriteFileResult")
