"""A small tmpfs that only one process (and its children) sees, for disk-full and read-only tests.

The process is started under ``unshare --mount`` with the tmpfs mounted at ``path`` in its own
mount namespace: nothing of it shows outside, and it goes away with the process. The test fills,
frees and remounts it from outside through ``nsenter``. Needs root (the tests run as root here
and in CI); under CI=true a machine where it cannot be mounted fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .helpers import require


def require_private_tmpfs() -> None:
    why = None
    if os.geteuid() != 0:
        why = "mounting a tmpfs needs root"
    elif not (shutil.which("unshare") and shutil.which("nsenter")):
        why = "unshare and nsenter (util-linux) are missing"
    else:
        with tempfile.TemporaryDirectory() as probe:
            result = subprocess.run(
                ["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "tmpfs", probe],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                why = f"cannot mount a tmpfs in a private mount namespace: {result.stderr.strip()}"
    require(why is None, why or "")


@dataclass
class PrivateTmpfs:
    path: Path
    size: str = "4m"
    pid: int = 0  # the process whose mount namespace holds it (set once it runs)

    def wrap(self) -> tuple[str, ...]:
        """A command prefix: mount the tmpfs in a new mount namespace, then exec the command."""
        self.path.mkdir(parents=True, exist_ok=True)
        script = f'mount -t tmpfs -o size={self.size},mode=0700 tmpfs "$0" && exec "$@"'
        return ("unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(self.path))

    def _inside(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.pid, "the process holding the tmpfs is not running"
        return subprocess.run(
            ["nsenter", "--target", str(self.pid), "--mount", "--", *command],
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def fill(self) -> None:
        """Write until no byte is left (dd stops at ENOSPC)."""
        result = self._inside("dd", "if=/dev/zero", f"of={self.path}/filler", "bs=64k", check=False)
        assert "No space left" in result.stderr, result.stderr

    def free(self) -> None:
        self._inside("rm", "-f", f"{self.path}/filler")

    def read_only(self, on: bool = True) -> None:
        self._inside("mount", "-o", f"remount,{'ro' if on else 'rw'}", str(self.path))
