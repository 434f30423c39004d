# shellcheck shell=bash
# Shared setup steps for scripts/test and scripts/up. Source it; do not run it.
#
# Every step is idempotent and cheap when already done: a stamp file under
# .venv records a hash of what the step installed from, and the step is
# skipped while that hash matches. Every failure says what failed and how to
# fix it, then exits non-zero.
#
# Needs: WORKDOCK_ROOT set to the repository root by the sourcing script.

: "${WORKDOCK_ROOT:?WORKDOCK_ROOT must be set before sourcing _setup.sh}"

VENV="$WORKDOCK_ROOT/.venv"
PYTHON_MIN_MAJOR=3
PYTHON_MIN_MINOR=11
NODE_MIN_MAJOR=20

# All setup chatter goes to stderr, so `scripts/up`'s stdout belongs to workdock.
say() { printf '==> %s\n' "$*" >&2; }

# fail WHAT HOW: print what failed and how to fix it, then exit 1.
fail() {
    printf '\nerror: %s\n  fix: %s\n' "$1" "$2" >&2
    exit 1
}

# hash_of FILE...: one sha256 over the given files (missing files hash as empty).
hash_of() {
    cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1
}

stamp_matches() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

# Run a noisy command with its output in LOG; show the tail of LOG if it fails.
run_logged() {
    local log="$1"
    shift
    if ! "$@" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        return 1
    fi
}

setup_check_python() {
    local python="${PYTHON:-python3}"
    command -v "$python" >/dev/null 2>&1 ||
        fail "$python not found (workdock needs Python >= $PYTHON_MIN_MAJOR.$PYTHON_MIN_MINOR)" \
            "install Python $PYTHON_MIN_MAJOR.$PYTHON_MIN_MINOR or newer (Debian: apt-get install python3 python3-venv), or set PYTHON=/path/to/python3.11"
    local version
    version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" ||
        fail "$python does not run as a Python interpreter" \
            "point PYTHON at a Python >= $PYTHON_MIN_MAJOR.$PYTHON_MIN_MINOR, or unset it to use python3"
    "$python" -c "import sys; sys.exit(sys.version_info < ($PYTHON_MIN_MAJOR, $PYTHON_MIN_MINOR))" ||
        fail "$python is Python $version, workdock needs >= $PYTHON_MIN_MAJOR.$PYTHON_MIN_MINOR" \
            "install a newer Python and point PYTHON at it, e.g. PYTHON=python3.12 scripts/test"
    SETUP_PYTHON="$python"
}

# setup_venv [test]: .venv with `pip install -e .` (what running workdock needs), or with
# `pip install -e ".[test]"` (the test tools too: pytest, Playwright, ...) when given `test`.
# Redone when pyproject.toml or the Python changes; a venv set up for the tests also serves `up`.
setup_venv() {
    local extras="${1:-}"
    setup_check_python
    if [[ -x "$VENV/bin/python" ]] && ! "$VENV/bin/python" -c "" >/dev/null 2>&1; then
        fail "$VENV exists but its python does not run (was it made by another Python?)" \
            "remove it and run this again: rm -rf '$VENV'"
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        say "creating $VENV"
        "$SETUP_PYTHON" -m venv "$VENV" ||
            fail "could not create the virtualenv $VENV" \
                "install the venv module (Debian: apt-get install python3-venv), then run this again"
    fi
    local stamp="$VENV/.workdock-python-setup" base target="$WORKDOCK_ROOT" what="pip install -e ."
    base="$(hash_of "$WORKDOCK_ROOT/pyproject.toml")-$("$VENV/bin/python" -c 'import sys; print(sys.version)' | head -n1)"
    if stamp_matches "$stamp" "$base test" || { [[ -z "$extras" ]] && stamp_matches "$stamp" "$base run"; }; then
        return 0
    fi
    if [[ "$extras" == test ]]; then
        target="${WORKDOCK_ROOT}[test]" what='pip install -e ".[test]"'
        say "installing workdock and its test tools into .venv ($what)"
    else
        say "installing workdock into .venv ($what)"
    fi
    run_logged "$VENV/pip-install.log" \
        "$VENV/bin/python" -m pip install --disable-pip-version-check -e "$target" ||
        fail "$what failed (full log: $VENV/pip-install.log)" \
            "check network access to PyPI and the error above; rerun once fixed"
    printf '%s' "$base ${extras:-run}" >"$stamp"
}

# tests/node_modules from tests/package-lock.json (`npm ci`), redone when the lock changes.
setup_node() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        fail "node and npm are needed for the real MCP test server (@modelcontextprotocol/server-everything)" \
            "install Node.js >= $NODE_MIN_MAJOR with npm (https://nodejs.org or your package manager)"
    fi
    local major
    major="$(node -p 'process.versions.node.split(".")[0]')"
    ((major >= NODE_MIN_MAJOR)) ||
        fail "node $(node --version) is too old, the test servers need Node >= $NODE_MIN_MAJOR" \
            "install Node.js $NODE_MIN_MAJOR or newer"
    local tests="$WORKDOCK_ROOT/tests" stamp="$VENV/.workdock-node-setup" want
    [[ -f "$tests/package-lock.json" ]] ||
        fail "tests/package-lock.json is missing" "restore it from git: git checkout -- tests/package-lock.json"
    want="$(hash_of "$tests/package.json" "$tests/package-lock.json")-$(node --version)"
    if stamp_matches "$stamp" "$want" && [[ -x "$tests/node_modules/.bin/mcp-server-everything" ]]; then
        return 0
    fi
    say "installing the Node test servers (npm ci in tests/)"
    run_logged "$VENV/npm-ci.log" npm ci --prefix "$tests" --no-audit --no-fund ||
        fail "npm ci in tests/ failed (full log: $VENV/npm-ci.log)" \
            "check network access to the npm registry and the error above; rerun once fixed"
    printf '%s' "$want" >"$stamp"
}

# PostgreSQL server binaries and Chromium, from Debian packages.
setup_system_packages() {
    local missing=()
    compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || missing+=(postgresql)
    [[ -x /usr/bin/chromium ]] || missing+=(chromium)
    ((${#missing[@]} == 0)) && return 0

    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "installing Debian packages: ${missing[*]}"
        run_logged "$VENV/apt-get.log" apt-get update ||
            fail "apt-get update failed (full log: $VENV/apt-get.log)" "check network access to the Debian mirrors"
        run_logged "$VENV/apt-get.log" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "${missing[@]}" ||
            fail "apt-get install ${missing[*]} failed (full log: $VENV/apt-get.log)" \
                "install them by hand: apt-get install --no-install-recommends ${missing[*]}"
        return 0
    fi

    local message="missing system packages: ${missing[*]} (the PostgreSQL and browser tests need /usr/lib/postgresql/*/bin and /usr/bin/chromium)"
    local how="sudo apt-get install --no-install-recommends ${missing[*]}   (Debian/Ubuntu package names)"
    if [[ "${CI:-}" == "true" ]]; then
        fail "$message" "$how"
    fi
    printf '\nwarning: %s\n  to run them: %s\n  until then those tests are skipped.\n\n' "$message" "$how" >&2
}
