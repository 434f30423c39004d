"""Secrets at rest: a private data dir, sealed agent tokens and header values, plaintext rows of
an older database converted, and a wrong or missing key refused at start with a clear error."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import text

from tests.chat.conftest import Api, ChatServer
from tests.support.agent import TOKEN, RunningAgent
from tests.support.helpers import free_port
from workdock.chat.store.db import MIGRATIONS, head_revision
from workdock.secretbox import KEY_ENV, new_key

pytestmark = pytest.mark.anyio

HEADER_SECRET = "Bearer header-secret-0123456789"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def rows(db: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(query).fetchall()


async def test_the_data_dir_is_private_and_secrets_are_sealed_in_the_database(
    start_chat_server: Callable[..., ChatServer], start_agent: Callable[..., RunningAgent], tmp_path: Path
) -> None:
    agent = start_agent({})
    server = start_chat_server(data_dir=tmp_path / "data")
    api = Api(server.url, server.admin_token)
    try:
        workspace = await api.post(
            "/workspaces", {"name": "w", "agent_url": agent.url, "agent_token": TOKEN}, expect=201
        )
        await api.post(
            "/mcp-servers",
            {"slug": "docs", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": HEADER_SECRET}},
            expect=201,
        )
        # The sealed token still opens: the server reaches the agent with it.
        assert (await api.get(f"/workspaces/{workspace['id']}"))["agent"]["reachable"] is True
    finally:
        await api.aclose()
    data = server.data_dir
    assert mode(data) == 0o700
    files = {p.name: mode(p) for p in data.iterdir()}
    assert {"workdock.db", "workdock.db-wal", "workdock.db-shm", "secret.key", "admin.token"} <= set(files)
    assert all(m == 0o600 for m in files.values()), files
    raw = (data / "workdock.db").read_bytes() + (data / "workdock.db-wal").read_bytes()
    assert TOKEN.encode() not in raw and b"header-secret" not in raw
    [(sealed,)] = rows(data / "workdock.db", "select agent_token from workspaces")
    assert str(sealed).startswith("wdsec1:")
    [(headers,)] = rows(data / "workdock.db", "select headers from mcp_servers")
    assert '"Authorization": "wdsec1:' in str(headers)
    # API tokens and login codes are only ever checked: stored as SHA-256 digests.
    assert server.admin_token.encode() not in raw
    assert all(len(str(h)) == 64 for (h,) in rows(data / "workdock.db", "select token_hash from tokens"))


async def test_a_loose_data_dir_is_tightened_at_start_with_a_warning(
    start_chat_server: Callable[..., ChatServer], tmp_path: Path
) -> None:
    data = tmp_path / "loose"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    (data / "notes.txt").write_text("left here\n")
    os.chmod(data / "notes.txt", 0o644)
    server = start_chat_server(data_dir=data, subprocess_mode=True)
    assert mode(data) == 0o700 and mode(data / "notes.txt") == 0o600
    log = server.log_path.read_text()
    assert "was readable by other users (mode 755); it is now 700" in log


def _old_database(data: Path) -> Path:
    """A database as the previous release left it: schema 0001, plaintext secrets."""
    data.mkdir(mode=0o700)
    db = data / "workdock.db"
    engine = create_sync_engine(f"sqlite:///{db}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        now = "2026-01-01 00:00:00.000000"
        connection.execute(text("insert into users values ('u1', 'admin', 1, :now)"), {"now": now})
        connection.execute(
            text("insert into workspaces values ('w1', 'u1', 'old', :url, :token, :now)"),
            {"url": "http://127.0.0.1:9", "token": "plain-agent-token", "now": now},
        )
        connection.execute(
            text(
                "insert into mcp_servers values ('m1', 'docs', 'http://127.0.0.1:9/mcp', 'http', "
                """'{"Authorization": "Bearer plain-header"}', '[]', '[]', 0, :now, :now)"""
            ),
            {"now": now},
        )
    engine.dispose()
    return db


def _start(data: Path, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workdock.chat.cli_server",
                "--listen",
                f"127.0.0.1:{free_port()}",
                "--data-dir",
                str(data),
            ],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


async def test_plaintext_rows_are_sealed_by_the_migration(
    start_chat_server: Callable[..., ChatServer], tmp_path: Path
) -> None:
    data = tmp_path / "old"
    db = _old_database(data)
    key = new_key()
    server = start_chat_server(data_dir=data, env={KEY_ENV: key})
    server.stop()
    [(token,)] = rows(db, "select agent_token from workspaces")
    [(headers,)] = rows(db, "select headers from mcp_servers")
    [(revision,)] = rows(db, "select version_num from alembic_version")
    assert revision == head_revision() and str(token).startswith("wdsec1:") and "plain" not in str(headers)
    assert not (data / "secret.key").exists()  # the key came from the environment

    # A wrong key, or none where the rows need one: the server refuses to start, and says why.
    for env, words in (
        ({KEY_ENV: new_key()}, "was sealed with key"),
        ({KEY_ENV: ""}, "secret.key was missing"),
        ({KEY_ENV: "not a key"}, "32 random bytes in base64"),
    ):
        log = tmp_path / f"refused-{len(words)}.log"
        proc = _start(data, log, env)
        try:
            assert proc.wait(timeout=60) != 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert words in log.read_text(), log.read_text()
    assert not (data / "secret.key").exists()  # the key made for the failed start was taken back

    # The right key opens them again: the server starts (start_chat_server waits for /healthz).
    start_chat_server(data_dir=data, env={KEY_ENV: key}, subprocess_mode=True)
