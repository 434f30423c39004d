"""``workdock login-url``: a fresh one-time login URL for the local admin, for when the one printed
at start was used (it works once) or has expired (after a day)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from workdock.agent.discovery import running_up
from workdock.chat.auth import new_login_url
from workdock.chat.datadir import ADMIN_TOKEN_FILE, default_data_dir
from workdock.chat.store.db import create_engine, migrate, sqlite_url
from workdock.chat.store.models import User
from workdock.chat.store.repo import Store
from workdock.secretbox import key_from_env, load_key

SERVER_ENV = "WORKDOCK_SERVER"
DEFAULT_SERVER = "http://127.0.0.1:3000"


class LoginUrlError(Exception):
    pass


def server_url(explicit: str | None) -> str:
    """``--server``, else the running ``workdock up``'s, else ``$WORKDOCK_SERVER``, else the default."""
    if explicit:
        return explicit
    if (record := running_up()) is not None:
        return record.server_url
    return os.environ.get(SERVER_ENV) or DEFAULT_SERVER


async def _login_url(base_url: str, database_url: str | None, data_dir: Path) -> str:
    if database_url is None:
        database = data_dir / "workdock.db"
        if not database.exists():
            raise LoginUrlError(
                f"no workdock database in {data_dir}: start `workdock up` or `workdock server` first "
                "(or pass --data-dir / --database-url)"
            )
        database_url = sqlite_url(database)
    # The server's key: a pending migration may seal stored secrets with it.
    box = load_key(data_dir, key_from_env()).box
    engine = create_engine(database_url)
    try:
        await migrate(engine, box)  # the schema the server would have: idempotent
        store = Store(engine, box)
        try:
            user = await _local_admin(store, data_dir)
            return await new_login_url(store, base_url, user)
        finally:
            store.close()
    finally:
        await engine.dispose()


async def _local_admin(store: Store, data_dir: Path) -> User:
    """The user of the data dir's ``admin.token`` (the local CLI's), else the first admin."""
    token_file = data_dir / ADMIN_TOKEN_FILE
    if token_file.exists():
        user = await store.user_for_token(token_file.read_text().strip())
        if user is not None:
            return user
    admins = [u for u in await store.list_users() if u.is_admin]
    if not admins:
        raise LoginUrlError("the database has no admin user yet: start the server once to create it")
    return admins[0]


def run_login_url(server: str | None, database_url: str | None, data_dir: Path | None) -> str:
    """The new URL (valid for a day, used once); ``LoginUrlError`` says why there is none."""
    return asyncio.run(_login_url(server_url(server), database_url, data_dir or default_data_dir()))
