"""The data dir holds secrets (the database, the secret key, the admin's token): only its owner
may read it. Created 0700 with files 0600; an existing one that is looser is tightened, with a
warning, on every start."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
ADMIN_TOKEN_FILE = "admin.token"  # the first admin's API token, read by the terminal client


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "workdock"


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & 0o077:
        os.chmod(path, mode)
        logger.warning("%s was readable by other users (mode %o); it is now %o", path, current, mode)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists. SQLite gives its -wal and -shm files
    the mode of the database file, so a database made this way stays private."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        pass


def prepare(data_dir: Path, sqlite_file: Path | None = None) -> None:
    """Make ``data_dir`` (0700) and tighten it and its files; make the SQLite file 0600 first."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    _tighten(data_dir, DIR_MODE)
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        create_private_file(sqlite_file)
        for path in (sqlite_file, *(Path(f"{sqlite_file}{s}") for s in SQLITE_SIDE_FILES)):
            if path.is_file():
                _tighten(path, FILE_MODE)
    for entry in data_dir.iterdir():
        if entry.is_file() and not entry.is_symlink():
            _tighten(entry, FILE_MODE)
