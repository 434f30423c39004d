"""POST /api/v0/exec in the foreground: real shells, real process groups."""

from __future__ import annotations

import os
import pwd
import sys
import time
from pathlib import Path

import anyio
import httpx2
import pytest

from support.processes import group_members
from workdock.agent.workspace.processes import user_shell
from workdock.agentapi import AgentClient, AgentError

pytestmark = pytest.mark.anyio

PY = sys.executable


async def test_runs_in_the_workspace_dir_with_stdout_and_stderr_interleaved(
    client: AgentClient, root: Path
) -> None:
    result = await client.exec("pwd; echo out; echo err >&2; echo out2")
    assert result.exit_code == 0
    assert result.output == f"{root}\nout\nerr\nout2\n"
    assert result.truncated is False and result.timed_out is False and result.signal is None
    assert result.duration_ms >= 0


async def test_cwd_relative_or_absolute(client: AgentClient, root: Path, tmp_path: Path) -> None:
    (root / "sub").mkdir()
    assert (await client.exec("pwd", cwd="sub")).output == f"{root / 'sub'}\n"
    assert (await client.exec("pwd", cwd=str(tmp_path))).output == f"{tmp_path}\n"


async def test_a_missing_or_file_cwd_is_refused(client: AgentClient, root: Path) -> None:
    (root / "file").write_text("x")
    with pytest.raises(AgentError) as missing:
        await client.exec("pwd", cwd="nowhere")
    assert missing.value.status == 404
    with pytest.raises(AgentError) as not_dir:
        await client.exec("pwd", cwd="file")
    assert (not_dir.value.status, not_dir.value.message) == (400, "not a directory")


async def test_command_not_found(client: AgentClient) -> None:
    result = await client.exec("surely-no-such-command-xyz --flag")
    assert result.exit_code == 127
    assert "surely-no-such-command-xyz" in result.output and "not found" in result.output


async def test_non_zero_exit(client: AgentClient) -> None:
    result = await client.exec("echo partial; exit 3")
    assert (result.exit_code, result.output, result.signal) == (3, "partial\n", None)


async def test_own_process_group_and_session_and_no_stdin(client: AgentClient) -> None:
    probe = (
        "import os, sys; print(os.getpgid(0) == os.getpid(), os.getsid(0) == os.getpid(), "
        "repr(sys.stdin.read()))"
    )
    result = await client.exec(f'exec {PY} -c "{probe}"')
    # Leader of a new session and group; stdin is /dev/null, so a command waiting for input ends.
    assert result.output == "True True ''\n"


async def test_the_agents_environment_without_its_token(
    client: AgentClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKSPACE_TEST_MARK", "from the agent")
    monkeypatch.setenv("WORKDOCK_AGENT_TOKEN", "secret-agent-token")
    result = await client.exec('echo "$WORKSPACE_TEST_MARK|${WORKDOCK_AGENT_TOKEN:-unset}"')
    assert result.output == "from the agent|unset\n"


def test_the_users_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELL", "/bin/sh")
    assert user_shell() == "/bin/sh"
    monkeypatch.delenv("SHELL")
    assert user_shell() == (pwd.getpwuid(os.getuid()).pw_shell or "/bin/sh")


async def test_the_command_runs_under_the_users_shell(client: AgentClient) -> None:
    shell = os.environ.get("SHELL") or user_shell()
    result = await client.exec("cat /proc/$$/cmdline | tr '\\0' ' '")
    assert result.output.startswith(f"{shell} -c ")


async def test_timeout_ends_the_whole_group_and_says_so(client: AgentClient) -> None:
    # Children (one of them ignoring SIGTERM, so SIGKILL must follow) and a grandchild.
    command = (
        "echo $$; sleep 300 & sh -c 'trap \"\" TERM; sleep 300 & wait' & "
        "sh -c 'sleep 300' & echo started; wait"
    )
    begin = time.monotonic()
    result = await client.exec(command, timeout_ms=1500)
    took = time.monotonic() - begin
    assert result.timed_out is True
    assert result.signal == "TERM" and result.exit_code == 128 + 15
    pgid = int(result.output.split()[0])
    assert "started" in result.output
    assert 1.5 <= took < 10, took
    assert 1500 <= result.duration_ms < 10_000
    assert group_members(pgid) == [], "a process of the timed-out command survived"


async def test_a_job_left_running_in_the_background_ends_with_the_command(client: AgentClient) -> None:
    begin = time.monotonic()
    result = await client.exec("sleep 300 & echo $$")
    # The answer does not wait for the stray job, and the job does not outlive the command.
    assert time.monotonic() - begin < 10
    assert result.exit_code == 0 and result.timed_out is False
    assert group_members(int(result.output)) == []


def split_at_marker(output: str) -> tuple[str, int, str]:
    """(head, bytes cut, tail) of output cut in the middle."""
    head, rest = output.split("\n[... ", 1)
    count, tail = rest.split(" bytes of output cut ...]\n", 1)
    return head, int(count), tail


async def test_output_over_64_kib_keeps_head_and_tail(client: AgentClient) -> None:
    script = "import sys; sys.stdout.write('HEAD' + 'x' * 200000 + 'TAIL')"
    result = await client.exec(f'{PY} -c "{script}"')
    assert result.truncated is True
    assert len(result.output.encode()) <= 64 * 1024
    head, cut, tail = split_at_marker(result.output)
    assert head.startswith("HEADxxx") and tail.endswith("xxxTAIL")
    assert len(head) + cut + len(tail) == 200008  # the marker counts exactly what is missing
    assert len(head) + len(tail) > 60 * 1024


async def test_a_cut_never_splits_a_character(client: AgentClient) -> None:
    script = "import sys; sys.stdout.write('\\u20ac' * 100000)"
    result = await client.exec(f'{PY} -c "{script}"')
    head, cut, tail = split_at_marker(result.output)
    assert set(head) == set(tail) == {"\u20ac"}
    assert len(head.encode()) + cut + len(tail.encode()) == 300000


async def test_20_concurrent_commands(client: AgentClient) -> None:
    results: dict[int, str] = {}

    async def run(i: int) -> None:
        results[i] = (await client.exec(f"sleep 1; echo {i}")).output

    begin = time.monotonic()
    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(run, i)
    assert results == {i: f"{i}\n" for i in range(20)}
    assert time.monotonic() - begin < 10, "the commands ran one after another"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"command": ""},
        {"command": "true", "timeout_ms": 0},
        {"command": "true", "timeout_ms": 600_001},
        {"command": "true", "timeout_ms": "100"},
        {"command": ["ls"]},
        {"command": "true", "background": "yes"},
    ],
)
async def test_bad_exec_requests_are_400(http: httpx2.AsyncClient, body: object) -> None:
    response = await http.post("/api/v0/exec", json=body)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"message", "detail"}
