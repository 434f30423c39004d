"""`workdock up`: server + agent for a directory in one process, workspace registered, URL printed."""

from __future__ import annotations

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
from tests.conftest import free_port, wait_until_sync
from tests.support.processes import stop_group

pytestmark = pytest.mark.anyio


@contextmanager
def run_up(
    project: Path, data_dir: Path, fake_model: FakeOpenAI, log_path: Path
) -> Iterator[tuple[int, str]]:
    """`workdock up` for ``project`` as a child process: (port, the login URL it printed). Stopped
    with SIGTERM at the end, which must end it cleanly."""
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
            env={**os.environ, **model_env(fake_model)},
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
    data_dir = tmp_path / "data"
    with run_up(project, data_dir, fake_model, tmp_path / "up.log") as (port, url):
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
        with run_up(project, data_dir, fake_model, tmp_path / f"up-{round_}.log") as (port, _):
            [workspace] = await workspaces(port)
            assert (workspace["id"], workspace["name"], workspace["path"]) == (old["id"], "app", str(project))
            assert workspace["agent"]["reachable"]
            api = Api(f"http://127.0.0.1:{port}", (data_dir / "admin.token").read_text().strip())
            try:
                assert (await api.get(f"/chats/{chat['id']}"))["workspace_id"] == old["id"]
            finally:
                await api.aclose()

    with run_up(namesake, data_dir, fake_model, tmp_path / "up-namesake.log") as (port, _):
        listed = {(w["name"], w["path"]) for w in await workspaces(port)}
        assert listed == {("app", str(project)), ("client/app", str(namesake))}
