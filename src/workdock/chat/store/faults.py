"""Database failures the server can name: no space left (507), or a database it cannot write or
reach (503). Both come from the disk or the database server, not from the request."""

from __future__ import annotations

import errno
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, OperationalError

_NO_SPACE_SQLSTATES = {"53100"}  # PostgreSQL disk_full
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57", "58", "25006")  # connection, resources, shutdown, I/O


@dataclass(frozen=True)
class DatabaseFault:
    status: int  # 507 or 503
    message: str
    detail: str


def database_fault(exc: BaseException) -> DatabaseFault | None:
    """What a database error means for the client, or None when it is not the database's fault."""
    if not isinstance(exc, DBAPIError):
        return None
    original = exc.orig
    text = str(original).lower()
    state = str(getattr(original, "sqlstate", None) or getattr(original, "pgcode", None) or "")
    if state in _NO_SPACE_SQLSTATES or "disk is full" in text or "no space" in text:
        return DatabaseFault(507, "no space left for the database", "free space on its disk, then try again")
    if "readonly" in text or "read-only" in text or getattr(original, "errno", None) == errno.EROFS:
        return DatabaseFault(503, "the database is read-only", _first_line(original))
    if isinstance(exc, OperationalError) or state.startswith(_UNAVAILABLE_SQLSTATE_CLASSES):
        return DatabaseFault(503, "the database is unavailable", _first_line(original))
    return None


def _first_line(error: BaseException | None) -> str:
    # The driver's own words, without the SQL statement and parameters SQLAlchemy appends.
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
