"""scripts/up installs only what running needs (`pip install -e .`); scripts/test adds the test tools.

The scripts run for real, in a copy of the repository's scripts, pyproject.toml and test manifests;
the installers they call (the venv's python for `pip` and `pytest`, npm) are small stand-ins that
record what they were asked to do, so no package is downloaded.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The venv's python: real Python for `-c` (the scripts' version checks), a recorder for `-m ...`.
VENV_PYTHON = f"""#!/usr/bin/env bash
if [[ "$1" == -m ]]; then
    echo "$*" >> "$CALLS"
    if [[ "$2" == pip ]]; then echo "pip output"; exit "${{PIP_STATUS:-0}}"; fi
    exit 0
fi
exec {sys.executable} "$@"
"""
RECORDER = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$CALLS"
"""
# The base python: `-m venv DIR` makes a stand-in venv; anything else is the real Python.
BASE_PYTHON = f"""#!/usr/bin/env bash
if [[ "$1" == -m && "$2" == venv ]]; then
    mkdir -p "$3/bin"
    printf '%s' '{VENV_PYTHON}' > "$3/bin/python"
    for tool in workdock ruff mypy; do printf '%s' '{RECORDER}' > "$3/bin/$tool"; done
    chmod +x "$3"/bin/*
    exit 0
fi
exec {sys.executable} "$@"
"""
NPM = """#!/usr/bin/env bash
echo "npm $*" >> "$CALLS"
mkdir -p "$TESTS_DIR/node_modules/.bin" && touch "$TESTS_DIR/node_modules/.bin/mcp-server-everything"
chmod +x "$TESTS_DIR/node_modules/.bin/mcp-server-everything"
"""


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "workdock"
    shutil.copytree(ROOT / "scripts", root / "scripts")
    (root / "tests").mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(ROOT / "tests" / name, root / "tests" / name)
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def run(
    checkout: Path, script: str, *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    tools = checkout.parent / "bin"
    tools.mkdir(exist_ok=True)
    python = executable(tools / "python3", BASE_PYTHON)
    executable(tools / "npm", NPM)
    calls = checkout.parent / "calls.log"
    result = subprocess.run(
        [str(checkout / "scripts" / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=checkout.parent,
        env={
            **os.environ,
            "PATH": f"{tools}:{os.environ['PATH']}",
            "PYTHON": str(python),
            "CALLS": str(calls),
            "TESTS_DIR": str(checkout / "tests"),
            **env,
        },
    )
    recorded = calls.read_text().splitlines() if calls.exists() else []
    calls.unlink(missing_ok=True)
    return result, recorded


def test_up_installs_only_what_running_needs_and_test_adds_the_rest(checkout: Path) -> None:
    result, calls = run(checkout, "up", "--dir", ".")
    assert result.returncode == 0, result.stderr
    assert calls == [f"-m pip install --disable-pip-version-check -e {checkout}", "workdock up --dir ."]
    assert not any(c.startswith("npm") for c in calls)  # no npm, no apt for running
    assert "installing workdock into .venv (pip install -e .)" in result.stderr

    again, calls = run(checkout, "up")
    assert again.returncode == 0 and calls == ["workdock up"]  # installed once

    tested, calls = run(checkout, "test", "-q")
    assert tested.returncode == 0, tested.stderr
    assert calls[0] == f"-m pip install --disable-pip-version-check -e {checkout}[test]"
    # the files run on three parallel workers unless told otherwise
    assert any(c.startswith("npm ci") for c in calls) and calls[-1] == "-m pytest -n 3 --dist loadfile -q"

    # A venv set up for the tests serves `up` as it is.
    after, calls = run(checkout, "up")
    assert after.returncode == 0 and calls == ["workdock up"]


def test_both_say_clearly_when_they_cannot_install(checkout: Path) -> None:
    for script, what in (("up", "pip install -e . failed"), ("test", 'pip install -e ".[test]" failed')):
        result, calls = run(checkout, script, PIP_STATUS="1")
        assert result.returncode == 1
        assert f"error: {what}" in result.stderr and "fix: check network access to PyPI" in result.stderr
        assert "pip output" in result.stderr  # the tail of the installer's log
        assert not any(c.startswith(("workdock", "-m pytest")) for c in calls)
