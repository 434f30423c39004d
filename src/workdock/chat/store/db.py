"""Database engine: URL normalisation, SQLite pragmas, migrations on start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from workdock.secretbox import SecretBox

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def normalize_url(url: str) -> str:
    """Accept the URLs users type (``postgresql://``, ``sqlite:///x.db``) and pick the async drivers."""
    parsed = make_url(url)
    driver = parsed.drivername
    if driver in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif driver == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif driver not in ("postgresql+asyncpg", "sqlite+aiosqlite"):
        raise ValueError(f"unsupported database URL scheme {driver!r}: use sqlite:/// or postgresql://")
    return parsed.render_as_string(hide_password=False)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    parsed = make_url(normalize_url(url))
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    if parsed.query.get("uri") == "true":  # sqlite:///file:/path/db?mode=ro&uri=true
        return Path(parsed.database.removeprefix("file:"))
    return Path(parsed.database)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (history, stream replays) run beside the turn's writes; foreign keys
    # make deletes cascade as they do on PostgreSQL.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def sqlite_step_writer(engine: AsyncEngine) -> Engine | None:
    """For a SQLite file, a plain (sync) engine on the same file for the turn's step writes.

    Through the async driver a step's transaction is about a dozen hops to the driver's thread;
    done by this engine inside one worker thread it is one. ``None`` for anything else.
    """
    url = engine.url
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    writer = create_sync_engine(
        url.set(drivername="sqlite+pysqlite"), connect_args={"timeout": 30, "check_same_thread": False}
    )
    event.listen(writer, "connect", _sqlite_pragmas)
    return writer


def create_engine(url: str) -> AsyncEngine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest migration's revision id: where ``migrate`` brings every database."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _upgrade(connection: Connection, box: SecretBox) -> None:
    config = _alembic_config()
    config.attributes["connection"] = connection
    config.attributes["secret_box"] = box  # migrations that seal or open stored secrets use it
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine, box: SecretBox) -> None:
    """Bring the schema to the newest revision (idempotent; runs on every start)."""
    if not engine.url.drivername.startswith("sqlite"):
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, box)
        return
    # SQLite alters a table by copying it and dropping the old one; with foreign keys on, that DROP
    # deletes every row that references the table (ON DELETE CASCADE): a workspace's chats and their
    # messages. So migrations run with them off (the pragma is ignored inside a transaction, hence
    # before it), and the result is checked before they are turned back on.
    async with engine.connect() as connection:
        await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        await connection.commit()
        try:
            async with connection.begin():
                await connection.run_sync(_upgrade, box)
                broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if broken:
                    raise RuntimeError(f"the migration left rows whose references are broken: {broken[:5]}")
        finally:
            await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            await connection.commit()
