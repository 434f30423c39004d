"""`workdock up`: server + agent for a directory in one process, workspace registered, URL printed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from tests.chat.conftest import MODEL, Api, model_env
from tests.chat.fake_openai import Call, FakeOpenAI, Reply
from tests.chat.test_turn_e2e import turn_ended
from tests.conftest import free_port, wait_until_sync
from tests.support.processes import stop_group

pytestmark = pytest.mark.anyio


async def test_up_serves_the_directory_and_prints_a_login_url(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("the project readme\n")
    data_dir, log_path = tmp_path / "data", tmp_path / "up.log"
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

        url = wait_until_sync(printed_url, timeout=30, message="`up` to print its URL")
        assert url.startswith(f"http://127.0.0.1:{port}/login?code=")
        async with httpx2.AsyncClient() as browser:
            assert (await browser.get(url)).status_code == 303
            assert (await browser.get(f"http://127.0.0.1:{port}/api/v0/me")).json()["is_admin"]

        api = Api(f"http://127.0.0.1:{port}", (data_dir / "admin.token").read_text().strip())
        try:
            [workspace] = (await api.get("/workspaces"))["workspaces"]
            assert workspace["name"] == str(project) and workspace["agent"]["reachable"]
            chat = await api.post("/chats", {"workspace_id": workspace["id"]}, expect=201)
            assert chat["model"] == MODEL
            fake_model.add(Reply(calls=[Call("read_file", {"path": "README.md"})]), Reply(text="read it"))
            await api.post(f"/chats/{chat['id']}/messages", {"content": "read the readme"}, expect=202)
            await api.events(chat["id"], turn_ended())
            assert "the project readme" in str(fake_model.tool_messages(1))
        finally:
            await api.aclose()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log_path.read_text()
    finally:
        stop_group(proc.pid)
