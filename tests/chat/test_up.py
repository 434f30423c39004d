"""`workdock up`: server + agent for a directory in one process, workspace registered, URL printed;
its agent recorded for the CLI; its servers shown as a table when they settle, then line by line."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from tests.chat.conftest import MODEL, Api, ChatServer, model_env
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import turn_ended
from tests.conftest import free_port, wait_until, wait_until_sync
from tests.support.agent import fixture_server, write_config
from tests.support.processes import stop_group

pytestmark = pytest.mark.anyio


def client_env(state: Path) -> dict[str, str]:
    """The environment of a user's shell: no agent URL or token set, the test's own state dir."""
    env = {k: v for k, v in os.environ.items() if k not in ("WORKDOCK_AGENT_TOKEN", "WORKDOCK_AGENT_URL")}
    return {**env, "XDG_STATE_HOME": str(state), "COLUMNS": "200", "NO_COLOR": "1"}


def workdock(state: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workdock.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**client_env(state), **extra_env},
    )


@dataclass
class Up:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    state: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, which must end it cleanly."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=20) == 0, self.log()

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            assert self.process.poll() is None, self.log()
            return re.search(pattern, self.log())

        return wait_until_sync(found, timeout=timeout, message=f"`up` to print {pattern!r}")

    @property
    def record(self) -> Path:
        return self.state / "workdock" / "up.json"


StartUp = Callable[..., Up]


@pytest.fixture
def start_up(tmp_path: Path, fake_model: FakeOpenAI) -> Iterator[StartUp]:
    started: list[Up] = []

    def start(project: Path, env: dict[str, str] | None = None) -> Up:
        data_dir, state = tmp_path / "data", tmp_path / "state"
        log_path = tmp_path / f"up-{len(started)}.log"
        port = free_port()
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "workdock.cli", "up", "--dir", str(project)),
                    *("--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir)),
                ],
                env={**client_env(state), **model_env(fake_model), **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        up = Up(process, port, data_dir, state, log_path)
        started.append(up)
        return up

    yield start
    for up in started:
        stop_group(up.process.pid)


async def test_up_serves_the_directory_and_prints_a_login_url(
    tmp_path: Path, fake_model: FakeOpenAI, start_up: StartUp
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("the project readme\n")
    up = start_up(project)
    url = up.wait_for(r"open: (http://\S+)").group(1)
    assert url.startswith(f"http://127.0.0.1:{up.port}/login?code=")
    assert up.log().startswith("workdock is up for")  # the banner before anything else
    async with httpx2.AsyncClient(timeout=30) as browser:
        assert (await browser.get(url)).status_code == 303
        assert (await browser.get(f"http://127.0.0.1:{up.port}/api/v0/me")).json()["is_admin"]

    api = Api(f"http://127.0.0.1:{up.port}", (up.data_dir / "admin.token").read_text().strip())
    try:
        [workspace] = (await api.get("/workspaces"))["workspaces"]
        # Named by its directory, with the path beside the name.
        assert (workspace["name"], workspace["path"]) == ("project", str(project))
        assert workspace["agent"]["reachable"]
        chat = await api.post("/chats", {"workspace_id": workspace["id"]}, expect=201)
        assert chat["model"] == MODEL
        fake_model.add(Reply(calls=[Call("read_file", {"path": "README.md"})]), Reply(text="read it"))
        await api.post(f"/chats/{chat['id']}/messages", {"content": "read the readme"}, expect=202)
        await api.events(chat["id"], turn_ended())
        assert "the project readme" in str(fake_model.tool_messages(1))
    finally:
        await api.aclose()

    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(timeout=20) == 0, up.log()


def test_the_cli_reaches_the_agent_of_up_and_up_shows_its_servers(tmp_path: Path, start_up: StartUp) -> None:
    project = tmp_path / "project"
    project.mkdir()
    config = write_config(
        project / ".mcp.json",
        {"ok": fixture_server("crash_during_call.py"), "broken": {"command": "no-such-command-for-up"}},
    )
    up = start_up(project)
    up.wait_for(r"open: http://")
    # When the servers settle: a table of them, with each one's state, tool count and error.
    table = up.wait_for(r"MCP servers: 1 of 2 ready\n(.*\n)*?.*\bok\b.*ready.*\b2\b").group(0)
    assert re.search(r"broken .*failed .*command not found: no-such-command-for-up", up.log()), up.log()
    assert "ok" in table

    # The record: the agent's URL and token, readable by this user only.
    assert stat.S_IMODE(up.record.stat().st_mode) == 0o600
    record = json.loads(up.record.read_text())
    assert record["pid"] == up.process.pid and record["workspace"] == str(project)

    # tools, status and call find the agent with no flag and no token set.
    listed = workdock(up.state, "tools", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {t["name"] for t in json.loads(listed.stdout)["tools"]} == {"ok__echo", "ok__crash"}
    status = workdock(up.state, "status")
    assert status.returncode == 0 and "no-such-command-for-up" in status.stdout, status.stderr
    called = workdock(up.state, "call", "ok__echo", "-a", "text=through up")
    assert called.returncode == 0 and called.stdout.strip() == "through up", called.stderr

    # A new login URL, for this up's server.
    fresh = workdock(up.state, "login-url", "--data-dir", str(up.data_dir))
    assert fresh.stdout.startswith(f"http://127.0.0.1:{up.port}/login?code=wdl_"), fresh.stderr

    # An explicit --agent or $WORKDOCK_AGENT_URL still wins over the record, and so does a token
    # from the environment; the record's token is for the record's agent only.
    elsewhere = f"http://127.0.0.1:{free_port()}"
    for result in (
        workdock(up.state, "tools", "--agent", elsewhere, WORKDOCK_AGENT_TOKEN="x"),
        workdock(up.state, "tools", WORKDOCK_AGENT_URL=elsewhere, WORKDOCK_AGENT_TOKEN="x"),
    ):
        assert result.returncode == 1 and "agent unreachable" in result.stderr and elsewhere in result.stderr
    assert "no agent token" in workdock(up.state, "tools", "--agent", elsewhere).stderr
    wrong = workdock(up.state, "tools", WORKDOCK_AGENT_TOKEN="wrong-token")
    assert wrong.returncode == 1 and "unauthorized" in wrong.stderr

    # A change after the table is one line.
    write_config(
        config, {**json.loads(config.read_text())["mcpServers"], "later": fixture_server("paginated.py")}
    )
    up.wait_for(r"server later: ready")

    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(timeout=20) == 0, up.log()
    assert not up.record.exists()  # removed when up stops
    # The log says each thing once: the broken server's failure is not repeated at every retry.
    assert up.log().count("server broken: failed") == 1, up.log()


def test_a_record_whose_up_is_gone_is_ignored(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "workdock").mkdir(parents=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    port = free_port()
    record = {
        "pid": int(dead.stdout),
        "workspace": "/nowhere",
        "agent_url": f"http://127.0.0.1:{port}",
        "agent_token": "stale",
        "server_url": "http://127.0.0.1:1",
    }
    (state / "workdock" / "up.json").write_text(json.dumps(record))
    result = workdock(state, "tools")
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" not in result.stderr  # the stale agent was not tried


async def test_up_renames_a_workspace_named_by_its_path_and_tells_namesakes_apart(
    tmp_path: Path, start_up: StartUp, start_chat_server: Callable[..., ChatServer]
) -> None:
    project = tmp_path / "work" / "app"
    namesake = tmp_path / "client" / "app"
    project.mkdir(parents=True)
    namesake.mkdir(parents=True)
    data_dir = tmp_path / "data"
    # What `up` used to register: a workspace named by its absolute path, with a chat in it.
    server = start_chat_server(subprocess_mode=True, data_dir=data_dir)
    api = Api(server.url, server.admin_token)
    try:
        old = await api.post(
            "/workspaces",
            {"name": str(project), "agent_url": "http://127.0.0.1:9", "agent_token": "old"},
            expect=201,
        )
        chat = await api.post("/chats", {"workspace_id": old["id"], "title": "kept"}, expect=201)
    finally:
        await api.aclose()
    server.stop()

    async def workspaces(port: int) -> list[dict[str, object]]:
        api = Api(f"http://127.0.0.1:{port}", (data_dir / "admin.token").read_text().strip())
        try:
            return (await api.get("/workspaces"))["workspaces"]
        finally:
            await api.aclose()

    for _ in range(2):  # the second start finds it by its path
        up = start_up(project)
        up.wait_for(r"open: http://")
        port = up.port
        try:
            [workspace] = await workspaces(port)
            assert (workspace["id"], workspace["name"], workspace["path"]) == (old["id"], "app", str(project))
            assert workspace["agent"]["reachable"]
            api = Api(f"http://127.0.0.1:{port}", (data_dir / "admin.token").read_text().strip())
            try:
                assert (await api.get(f"/chats/{chat['id']}"))["workspace_id"] == old["id"]
            finally:
                await api.aclose()
        finally:
            up.stop()

    up = start_up(namesake)
    up.wait_for(r"open: http://")
    listed = {(w["name"], w["path"]) for w in await workspaces(up.port)}
    assert listed == {("app", str(project)), ("client/app", str(namesake))}


# The server's own settings and secrets, as a user running `workdock up` would have them set.
SERVER_SECRETS = {
    "OPENAI_API_KEY": "sk-openai-s3cret",
    "ANTHROPIC_API_KEY": "sk-ant-s3cret",
    "WORKDOCK_TOKEN": "wdk-user-s3cret",
    "WORKDOCK_AGENT_TOKEN": "wdk-agent-s3cret",
    "WORKDOCK_DATABASE_URL": "postgresql://u:pg-s3cret@127.0.0.1/none",
}


async def test_under_up_the_workspace_sees_none_of_the_servers_secrets(
    tmp_path: Path, fake_model: FakeOpenAI, start_up: StartUp
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    entry = fixture_server("print_env.py")
    entry["args"] += ["${OPENAI_API_KEY:-withheld}"]  # a repo's config cannot pass them on either
    write_config(project / ".mcp.json", {"env": entry})
    # WORKDOCK_DATABASE_URL is only for the children to miss: the server uses its own SQLite file.
    up = start_up(project, {**SERVER_SECRETS, "USER_SETTING": "kept", "WORKDOCK_DATABASE_URL": ""})
    up.wait_for(r"open: http://")
    api = Api(f"http://127.0.0.1:{up.port}", (up.data_dir / "admin.token").read_text().strip())
    try:
        [workspace] = (await api.get("/workspaces"))["workspaces"]
        chat = await api.post("/chats", {"workspace_id": workspace["id"]}, expect=201)
        await wait_tool(api, chat["id"], "env__environment")
        fake_model.add(
            Reply(calls=[Call("env__environment", {}), Call("execute", {"command": "env"})]),
            Reply(text="seen"),
        )
        await api.post(f"/chats/{chat['id']}/messages", {"content": "show the environment"}, expect=202)
        await api.events(chat["id"], turn_ended())
    finally:
        await api.aclose()
    up.stop()
    server, command = (m["content"] for m in fake_model.tool_messages(1))
    seen = json.loads(server)
    assert seen["env"]["USER_SETTING"] == "kept" and "USER_SETTING=kept" in command
    assert seen["argv"] == ["withheld"]
    for name in [*SERVER_SECRETS, "OPENAI_BASE_URL", "WORKDOCK_MODELS"]:
        assert name not in seen["env"], name
        assert f"{name}=" not in command, name
    for value in SERVER_SECRETS.values():
        assert value not in server and value not in command


async def wait_tool(api: Api, chat_id: str, name: str) -> None:
    async def offered() -> bool:
        tools = (await api.get(f"/chats/{chat_id}/tools"))["tools"]
        return name in {t["name"] for t in tools}

    await wait_until(offered, timeout=30, message=f"{name} to be offered")
