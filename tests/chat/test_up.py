"""`workdock up`: server + agent for a directory in one process, workspace registered, URL printed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def running_up(
    project: Path, data_dir: Path, log_path: Path, env: dict[str, str]
) -> Iterator[tuple[int, str]]:
    """`workdock up` for ``project`` as a child process: (its port, the login URL it printed)."""
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workdock.chat.cli_server",
                "--up",
                str(project),
                "--listen",
                f"127.0.0.1:{port}",
                "--data-dir",
                str(data_dir),
            ],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:

        def printed_url() -> str | None:
            assert proc.poll() is None, log_path.read_text()
            match = re.search(r"open: (http://\S+)", log_path.read_text())
            return match.group(1) if match else None

        yield port, wait_until_sync(printed_url, timeout=30, message="`up` to print its URL")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log_path.read_text()
    finally:
        stop_group(proc.pid)


async def test_up_serves_the_directory_and_prints_a_login_url(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("the project readme\n")
    data_dir, log_path = tmp_path / "data", tmp_path / "up.log"
    with running_up(project, data_dir, log_path, model_env(fake_model)) as (port, url):
        assert url.startswith(f"http://127.0.0.1:{port}/login?code=")
        async with httpx2.AsyncClient() as browser:
            assert (await browser.get(url)).status_code == 303
            assert (await browser.get(f"http://127.0.0.1:{port}/api/v0/me")).json()["is_admin"]

        api = Api(f"http://127.0.0.1:{port}", (data_dir / "admin.token").read_text().strip())
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


async def test_up_renames_a_workspace_named_by_its_path_and_tells_namesakes_apart(
    tmp_path: Path, fake_model: FakeOpenAI, start_chat_server: Callable[..., ChatServer]
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

    for round_ in range(2):  # the second start finds it by its path
        with running_up(project, data_dir, tmp_path / f"up-{round_}.log", model_env(fake_model)) as (port, _):
            [workspace] = await workspaces(port)
            assert (workspace["id"], workspace["name"], workspace["path"]) == (old["id"], "app", str(project))
            assert workspace["agent"]["reachable"]
            api = Api(f"http://127.0.0.1:{port}", (data_dir / "admin.token").read_text().strip())
            try:
                assert (await api.get(f"/chats/{chat['id']}"))["workspace_id"] == old["id"]
            finally:
                await api.aclose()

    with running_up(namesake, data_dir, tmp_path / "up-namesake.log", model_env(fake_model)) as (port, _):
        listed = {(w["name"], w["path"]) for w in await workspaces(port)}
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
    tmp_path: Path, fake_model: FakeOpenAI
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    entry = fixture_server("print_env.py")
    entry["args"] += ["${OPENAI_API_KEY:-withheld}"]  # a repo's config cannot pass them on either
    write_config(project / ".mcp.json", {"env": entry})
    env = {**model_env(fake_model), **SERVER_SECRETS, "USER_SETTING": "kept"}
    # WORKDOCK_DATABASE_URL is only for the children to miss: the server uses its own SQLite file.
    data_dir = tmp_path / "data"
    with running_up(project, data_dir, tmp_path / "up.log", {**env, "WORKDOCK_DATABASE_URL": ""}) as (
        port,
        _,
    ):
        api = Api(f"http://127.0.0.1:{port}", (data_dir / "admin.token").read_text().strip())
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
