"""A throwaway PostgreSQL server (Debian's binaries) on 127.0.0.1 for one test session.

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user and
its commands run through ``runuser``; otherwise they run as the current user. (pytest-postgresql
runs initdb as the current user, which fails as root.)

Any suite may use it: call ``require_postgres()`` (it skips, or fails under CI=true), then
``start_postgres``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .helpers import require

USER = "workdock"


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def unavailable() -> str | None:
    """Why a server cannot be started here, or None when it can."""
    if pg_bin() is None:
        return "PostgreSQL is not installed (Debian package postgresql)"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root, and runuser (util-linux) is missing to run PostgreSQL as postgres"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no postgres user to own the cluster"
    return None


def require_postgres() -> None:
    """Skip the test when PostgreSQL cannot run here; under CI=true, fail it instead."""
    why = unavailable()
    require(why is None, why or "")


@dataclass
class PostgresServer:
    port: int
    root: Path

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        _run([str(pg_bin() / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name])
        return self.url(name)


def _as_owner() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _run(args: list[str]) -> None:
    result = subprocess.run([*_as_owner(), *args], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )


def start_postgres(port: int) -> Iterator[PostgresServer]:
    bin_dir = pg_bin()
    assert bin_dir is not None, "PostgreSQL binaries are missing"
    root = Path(tempfile.mkdtemp(prefix="workdock-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
    data, sockets = root / "data", root / "sockets"
    try:
        _run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"]
        )
        _run(["mkdir", "-p", str(sockets)])
        _run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-h 127.0.0.1 -p {port} -k {sockets} -F",
                "start",
            ]
        )
        try:
            yield PostgresServer(port, root)
        finally:
            _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
