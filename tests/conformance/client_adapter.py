"""The MCP conformance suite's client command: a real `workdock agent` pointed at the scenario's server.

`conformance client --command "python client_adapter.py"` runs this with the scenario server's URL
as the last argument (`MCP_CONFORMANCE_SCENARIO` and `MCP_CONFORMANCE_CONTEXT` in the environment;
the context carries a pre-registered client's id and secret where a scenario has one). It writes
a `.mcp.json` with that one server, starts an agent on a free loopback port, and then acts as the
person and the browser: whenever the server is `needs_auth`, it opens the authorization URL
itself (the scenarios' authorization servers redirect at once, with no user) and hands the code
and state from the redirect to the agent, exactly as `workdock auth`'s loopback callback does.
Once the server is ready it calls each of its tools through the agent's streaming call-tool, then
stops the agent. A tool's request for input is answered as a person in the chat does when they
press Accept on the form without changing it: `POST /api/v0/mcp/elicitations/{id}` with
`accept` and the fields they filled in (none; the agent fills in the schema's defaults).

Exit status 0 when every step worked, 1 otherwise (what went wrong goes to stderr).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import httpx2

DEADLINE = 25.0  # the suite gives a client 30 s
CIMD_URL = "https://conformance-test.local/client-metadata.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def arguments_for(schema: dict[str, Any]) -> dict[str, Any]:
    """Plain values for a tool's required arguments (the scenarios' tools take numbers or nothing)."""
    values = {"number": 1, "integer": 1, "string": "test", "boolean": True, "array": [], "object": {}}
    properties = schema.get("properties") or {}
    return {
        name: values.get(str((properties.get(name) or {}).get("type")), "test")
        for name in schema.get("required") or []
    }


def entry(url: str, context: dict[str, Any], scenario: str) -> dict[str, Any]:
    """The scenario's server as a user would configure it: a pre-registered client where the
    scenario has one, and a machine client (client credentials) for the client-credentials ones."""
    server: dict[str, Any] = {"type": "http", "url": url}
    if scenario == "auth/basic-cimd":
        # The scenario's URL-based client ID (its client metadata document's URL), as a user
        # configures their organisation's.
        server["oauth"] = {"clientMetadataUrl": CIMD_URL}
        return server
    if not context.get("client_id") or "idp_issuer" in context:
        return server
    oauth: dict[str, Any] = {"clientId": context["client_id"]}
    if scenario.startswith("auth/client-credentials"):
        oauth["grantType"] = "client_credentials"
        if "private_key_pem" in context:
            oauth["privateKey"] = context["private_key_pem"]
            oauth["signingAlgorithm"] = context.get("signing_algorithm", "RS256")
    if context.get("client_secret"):
        oauth["clientSecret"] = context["client_secret"]
    server["oauth"] = oauth
    return server


async def complete_sign_ins(agent: httpx2.AsyncClient, ready: anyio.Event, failed: list[str]) -> None:
    """Follow every authorization URL the agent publishes and deliver its code, until cancelled."""
    handled: set[str] = set()
    async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as browser:
        while True:
            server = (await agent.get("/api/v0/mcp/servers")).json()["servers"][0]
            url = server.get("authorization_url")
            if server["state"] == "needs_auth" and url and url not in handled:
                handled.add(url)
                answer = await browser.get(url)
                location = answer.headers.get("location")
                if answer.status_code not in (301, 302, 303, 307, 308) or not location:
                    failed.append(
                        f"the authorization endpoint answered {answer.status_code}: {answer.text[:300]}"
                    )
                    return
                query = dict(parse_qsl(urlsplit(location).query))
                if "code" not in query:
                    failed.append(f"the authorization server sent no code: {query}")
                    return
                delivered = await agent.post(
                    f"/api/v0/mcp/servers/{server['name']}/auth/callback",
                    json={k: query[k] for k in ("code", "state", "iss") if k in query},
                )
                if delivered.status_code != 204:
                    failed.append(f"the agent refused the code: {delivered.text}")
                    return
            elif server["state"] == "ready":
                ready.set()
            elif server["state"] == "failed" and not ready.is_set():
                failed.append(f"the server failed: {server.get('error')}")
                return
            await anyio.sleep(0.1)


async def call(agent: httpx2.AsyncClient, tool: dict[str, Any]) -> str | None:
    """Call one tool with its events streamed, answering its requests for input; what went wrong."""
    body = {"tool_name": tool["name"], "arguments": arguments_for(tool["input_schema"])}
    headers = {"Accept": "text/event-stream"}
    async with agent.stream("POST", "/api/v0/mcp/call-tool", json=body, headers=headers) as answer:
        if answer.status_code != 200:
            return f"{answer.status_code} {(await answer.aread())[:300]!r}"
        event = None
        async for line in answer.aiter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = json.loads(line.split(":", 1)[1])
                if event == "elicitation":
                    reply = (
                        {"action": "accept", "content": {}}
                        if data["mode"] == "form"
                        else {"action": "accept"}
                    )
                    given = await agent.post(f"/api/v0/mcp/elicitations/{data['id']}", json=reply)
                    if given.status_code != 200:
                        return f"the agent refused the answer: {given.status_code} {given.text[:300]}"
                elif event == "error":
                    return f"error event: {json.dumps(data)[:300]}"
                elif event == "result":
                    return None
    return "the stream ended without a result"


async def drive(agent_url: str, token: str) -> list[str]:
    failed: list[str] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(base_url=agent_url, headers=headers, timeout=DEADLINE) as agent:
        with anyio.move_on_after(DEADLINE):
            while True:
                try:
                    if (await agent.get("/healthz")).status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                await anyio.sleep(0.1)
        ready = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(complete_sign_ins, agent, ready, failed)
            with anyio.move_on_after(DEADLINE):
                while not ready.is_set() and not failed:
                    await anyio.sleep(0.05)
            if ready.is_set() and not failed:
                tools = (await agent.get("/api/v0/mcp/tools")).json()["tools"]
                for tool in tools:
                    if problem := await call(agent, tool):
                        failed.append(f"{tool['name']}: {problem}")
            elif not failed:
                failed.append("the server was not ready in time")
            tg.cancel_scope.cancel()
    return failed


def main() -> int:
    url = sys.argv[-1]
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    with tempfile.TemporaryDirectory(prefix="workdock-conformance-") as tmp:
        root = Path(tmp)
        (root / "ws").mkdir()
        (root / "ws" / ".mcp.json").write_text(
            json.dumps(
                {
                    "mcpServers": {
                        "conformance": entry(url, context, os.environ.get("MCP_CONFORMANCE_SCENARIO", ""))
                    }
                }
            )
        )
        port, token = free_port(), secrets.token_urlsafe(16)
        log = (root / "agent.log").open("wb")
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workdock.cli",
                "agent",
                "--dir",
                str(root / "ws"),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            env={**os.environ, "WORKDOCK_AGENT_TOKEN": token, "XDG_STATE_HOME": str(root / "state")},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            failed = anyio.run(drive, f"http://127.0.0.1:{port}", token)
        finally:
            os.killpg(agent.pid, signal.SIGTERM)
            try:
                agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(agent.pid, signal.SIGKILL)
                agent.wait()
            log.close()
            sys.stderr.write((root / "agent.log").read_text(errors="replace"))
    for problem in failed:
        print(f"adapter: {problem}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    started = time.monotonic()
    sys.exit(main())
