"""Paths as clients give them: relative to the workspace dir unless absolute."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from workdock.http_errors import ApiError


def resolve(root: Path, path: str) -> Path:
    """The absolute path ``path`` names; ``root`` must itself be absolute."""
    if not path:
        raise ApiError(400, "invalid path", "the path is empty")
    if "\0" in path:
        raise ApiError(400, "invalid path", "the path contains a NUL byte")
    if path == "~" or path.startswith("~/"):
        path = os.path.expanduser(path)
    # Joining an absolute path onto root gives the absolute path itself. No normalisation:
    # the OS resolves "..", and does so correctly across symlinks where string rules would not.
    return root / path


def os_error(exc: OSError, path: Path) -> ApiError:
    """An OSError from the file system, as the API error a client can act on."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOENT:
        return ApiError(404, "no such file or directory", str(path))
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ApiError(403, reason.lower(), str(path))
    if exc.errno in (errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST):
        return ApiError(400, reason.lower(), str(path))
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ApiError(507, reason.lower(), str(path))
    return ApiError(500, "file system error", f"{path}: {reason}")
