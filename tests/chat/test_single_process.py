"""SQLite serves one chat server process: a second `workdock server` on the same database file
refuses to start, names the process that holds it and points to PostgreSQL for more than one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chat.conftest import ChatServer
from tests.support.helpers import free_port


def second_server(*args: str) -> subprocess.CompletedProcess[str]:
    # It must refuse at once; were it to start, the timeout would end it.
    return subprocess.run(
        [sys.executable, "-m", "workdock.cli", "server", "--listen", f"127.0.0.1:{free_port()}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.timeout(300)  # five server processes start one after the other
def test_a_second_server_on_the_same_sqlite_database_refuses_to_start(
    start_chat_server: Callable[..., ChatServer], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = start_chat_server(subprocess_mode=True, data_dir=data_dir)
    assert first.process is not None
    for args in (
        ("--data-dir", str(data_dir)),
        # The same file named by a URL, from another data dir: the lock is beside the database.
        ("--data-dir", str(tmp_path / "other"), "--database-url", f"sqlite:///{data_dir / 'workdock.db'}"),
    ):
        refused = second_server(*args)
        assert refused.returncode != 0, refused.stdout + refused.stderr
        message = refused.stderr
        assert f"is in use by process {first.process.pid} (" in message
        assert "workdock.chat.cli_server" in message  # the holder's command line
        assert "PostgreSQL" in message and "--database-url postgresql://" in message
        assert "Traceback" not in message
    first.stop()
    # Once the first is gone (however it ended: the kernel drops the lock), a server starts on it.
    again = start_chat_server(subprocess_mode=True, data_dir=data_dir)
    again.kill()
    third = start_chat_server(subprocess_mode=True, data_dir=data_dir)
    assert third.process is not None and third.process.poll() is None
