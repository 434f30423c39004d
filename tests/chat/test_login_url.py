"""`workdock login-url`: a fresh one-time login URL for the local admin, made in the database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from tests.chat.conftest import ChatServer

pytestmark = pytest.mark.anyio


def login_url(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workdock.cli", "login-url", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_STATE_HOME": str(state)},
    )


async def test_a_new_login_url_works_once_and_another_can_be_had(
    chat_server: ChatServer, tmp_path: Path
) -> None:
    first = login_url("--data-dir", str(chat_server.data_dir), "--server", chat_server.url, state=tmp_path)
    assert first.returncode == 0, first.stderr
    url = first.stdout.strip()
    assert url.startswith(f"{chat_server.url}/login?code=wdl_") and "\n" not in url
    assert "works once" in first.stderr
    async with httpx2.AsyncClient(timeout=30) as browser:
        assert (await browser.get(url)).status_code == 303
        me = (await browser.get(f"{chat_server.url}/api/v0/me")).json()
        assert me["name"] == "admin" and me["is_admin"]
    async with httpx2.AsyncClient(timeout=30) as other:
        used = await other.get(url)
        # Used: refused, with the app's page (which says how to get a new one) rather than JSON.
        assert used.status_code == 401 and used.headers["content-type"].startswith("text/html")
        again = login_url(
            "--data-dir", str(chat_server.data_dir), "--server", chat_server.url, state=tmp_path
        )
        assert (await other.get(again.stdout.strip())).status_code == 303


def test_without_a_database_it_says_what_to_do(tmp_path: Path) -> None:
    result = login_url("--data-dir", str(tmp_path / "empty"), state=tmp_path)
    assert result.returncode == 1
    assert "no workdock database" in result.stderr and "workdock up" in result.stderr
