"""Background processes: /exec with background, /processes, their output and signals, and shutdown."""

from __future__ import annotations

import sys
import time
from functools import partial
from pathlib import Path

import anyio
import httpx2
import pytest

from support.processes import group_members
from support.workspace_app import TOKEN, WorkspaceServer, serve_workspace, wait_until
from workdock.agent.workspace import ProcessTable
from workdock.agentapi import AgentClient, AgentError, ExecResult, ProcessInfo, ProcessOutput
from workdock.http_errors import ApiError

pytestmark = pytest.mark.anyio

PY = sys.executable


async def started_pid(client: AgentClient, process_id: str) -> int:
    listing = await client.list_processes()
    return next(p.pid for p in listing.processes if p.id == process_id)


async def output_contains(client: AgentClient, process_id: str, text: str) -> ProcessOutput | None:
    output = await client.process_output(process_id, offset=0)
    return output if text in output.output else None


async def test_background_answers_at_once_and_is_listed(client: AgentClient, root: Path) -> None:
    begin = time.monotonic()
    started = await client.exec("echo ready; sleep 300", background=True)
    assert time.monotonic() - begin < 5
    await wait_until(lambda: output_contains(client, started.process_id, "ready"), message="ready")

    listing = await client.list_processes()
    [info] = [p for p in listing.processes if p.id == started.process_id]
    assert info.running is True and info.background is True
    assert info.command == "echo ready; sleep 300" and info.cwd == str(root)
    assert info.exit_code is None and info.finished_at is None and info.output_bytes == 6

    stopped = await client.signal_process(started.process_id, "KILL")
    assert stopped.id == started.process_id
    await wait_until(lambda: group_members(info.pid) == [], message="the group to end")


async def test_output_reads_on_from_an_offset(client: AgentClient) -> None:
    started = await client.exec("echo one; echo two; sleep 300", background=True)
    pid = await started_pid(client, started.process_id)
    first = await wait_until(lambda: output_contains(client, started.process_id, "two\n"), message="two")
    assert (first.output, first.offset, first.next_offset) == ("one\ntwo\n", 0, 8)
    assert first.truncated is False and first.running is True

    later = await client.process_output(started.process_id, offset=first.next_offset)
    assert (later.output, later.offset, later.next_offset) == ("", 8, 8)
    from_middle = await client.process_output(started.process_id, offset=4)
    assert from_middle.output == "two\n"

    await client.signal_process(started.process_id, "TERM")
    await wait_until(lambda: group_members(pid) == [], message="the group to end")


async def test_output_of_a_chatty_process_keeps_head_and_tail(client: AgentClient) -> None:
    script = "import sys; sys.stdout.write('HEAD' + 'x' * 3000000 + 'TAIL')"
    started = await client.exec(f'{PY} -c "{script}"', background=True)

    async def finished() -> bool:
        listing = await client.list_processes()
        return any(p.id == started.process_id and not p.running for p in listing.processes)

    await wait_until(finished, message="the process to finish")
    start = await client.process_output(started.process_id, offset=0)
    assert start.output.startswith("HEADxxx") and len(start.output) == 64 * 1024
    assert start.truncated is True and start.next_offset == 64 * 1024

    # Past the kept head and before the kept tail: answered from the first kept byte after, and said so.
    gap = await client.process_output(started.process_id, offset=500_000)
    assert gap.offset == 3_000_008 - 1024 * 1024 and gap.truncated is True

    tail = await client.process_output(started.process_id)
    assert tail.output.endswith("xxxTAIL") and len(tail.output) == 64 * 1024
    assert tail.next_offset == 3_000_008 and tail.running is False and tail.exit_code == 0


async def test_finished_process_is_kept_until_its_output_is_read(client: AgentClient) -> None:
    started = await client.exec("echo done; exit 4", background=True)

    async def finished() -> bool:
        listing = await client.list_processes()
        return any(p.id == started.process_id and not p.running for p in listing.processes)

    await wait_until(finished, message="the process to finish")
    [info] = [p for p in (await client.list_processes()).processes if p.id == started.process_id]
    assert info.exit_code == 4 and info.finished_at is not None

    output = await client.process_output(started.process_id)
    assert (output.output, output.exit_code, output.running) == ("done\n", 4, False)
    # Read to the end: collected.
    assert started.process_id not in [p.id for p in (await client.list_processes()).processes]
    with pytest.raises(AgentError) as caught:
        await client.process_output(started.process_id)
    assert caught.value.status == 404


async def test_finished_processes_expire_after_10_minutes(tmp_path: Path) -> None:
    now = [0.0]
    table = ProcessTable(clock=lambda: now[0])
    try:
        process_id = await table.start("true", tmp_path)
        await wait_until(lambda: not table.list_all()[0].running, message="the process to finish")
        now[0] += 599
        assert [p.id for p in table.list_all()] == [process_id]
        now[0] += 1
        assert table.list_all() == []
    finally:
        await table.shutdown()


async def test_background_timeout_ends_the_group(client: AgentClient) -> None:
    started = await client.exec("sleep 300 & sleep 300", background=True, timeout_ms=500)
    pid = await started_pid(client, started.process_id)
    output = await wait_until(
        lambda: output_if_finished(client, started.process_id), message="the process to time out"
    )
    assert output.timed_out is True and output.signal == "TERM"
    assert group_members(pid) == []


async def output_if_finished(client: AgentClient, process_id: str) -> ProcessOutput | None:
    output = await client.process_output(process_id, offset=0)
    return None if output.running else output


async def test_signal_int_reaches_the_whole_group(client: AgentClient) -> None:
    started = await client.exec(
        "trap 'echo got INT; exit 5' INT; echo armed; sleep 300 & wait", background=True
    )
    pid = await started_pid(client, started.process_id)
    await wait_until(lambda: output_contains(client, started.process_id, "armed"), message="the trap")
    await client.signal_process(started.process_id, "INT")
    output = await wait_until(lambda: output_if_finished(client, started.process_id), message="the exit")
    assert output.exit_code == 5 and "got INT" in output.output and output.signal is None
    assert group_members(pid) == []


async def test_signal_to_a_finished_process_is_a_409(client: AgentClient) -> None:
    started = await client.exec("exit 0", background=True)

    async def finished() -> bool:
        return any(
            p.id == started.process_id and not p.running for p in (await client.list_processes()).processes
        )

    await wait_until(finished, message="the process to finish")
    with pytest.raises(AgentError) as caught:
        await client.signal_process(started.process_id, "TERM")
    assert caught.value.status == 409
    assert "exit code 0" in (caught.value.detail or "")


async def test_unknown_process_is_a_404(client: AgentClient) -> None:
    for call in (client.process_output("nope"), client.signal_process("nope", "KILL")):
        with pytest.raises(AgentError) as caught:
            await call
        assert caught.value.status == 404


async def test_bad_signal_and_offset_are_400(client: AgentClient, http: httpx2.AsyncClient) -> None:
    started = await client.exec("sleep 300", background=True)
    pid = await started_pid(client, started.process_id)
    bad_signal = await http.post(f"/api/v0/processes/{started.process_id}/signal", json={"signal": "HUP"})
    assert bad_signal.status_code == 400, bad_signal.text
    bad_offset = await http.get(f"/api/v0/processes/{started.process_id}/output", params={"offset": -1})
    assert bad_offset.status_code == 400, bad_offset.text
    await client.signal_process(started.process_id, "KILL")
    await wait_until(lambda: group_members(pid) == [], message="the group to end")


async def test_a_running_foreground_command_is_listed_and_can_be_signalled(client: AgentClient) -> None:
    results: list[ExecResult] = []

    async def run() -> None:
        results.append(await client.exec("sleep 300"))

    async def the_foreground() -> str | None:
        found = [p for p in (await client.list_processes()).processes if not p.background]
        return found[0].id if found else None

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        process_id = await wait_until(the_foreground, message="the foreground command to be listed")
        await client.signal_process(process_id, "TERM")
    assert results[0].signal == "TERM" and results[0].exit_code == 143
    assert (await client.list_processes()).processes == []  # its answer carried its output


async def test_dropping_the_request_ends_the_command(client: AgentClient, http: httpx2.AsyncClient) -> None:
    async def foreground() -> ProcessInfo | None:
        found = [p for p in (await client.list_processes()).processes if not p.background]
        return found[0] if found else None

    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(http.post, "/api/v0/exec", json={"command": "sleep 300 & sleep 300"}))
        info = await wait_until(foreground, message="the command to be listed")
        tg.cancel_scope.cancel()  # the client gives up: its connection closes
    await wait_until(lambda: group_members(info.pid) == [], message="the command's group to end")
    await wait_until(lambda: foreground_gone(client), message="the command to leave the list")


async def foreground_gone(client: AgentClient) -> bool:
    return not (await client.list_processes()).processes


async def test_a_cancelled_foreground_run_ends_its_group(tmp_path: Path) -> None:
    table = ProcessTable(term_grace=1.0)
    try:
        with anyio.move_on_after(0.5):
            await table.run("sleep 300 & sleep 300", tmp_path)
        [info] = table.list_all()
        await wait_until(lambda: table.list_all() == [], message="the cancelled command to finish")
        assert group_members(info.pid) == []
    finally:
        await table.shutdown()


async def test_shutdown_ends_every_background_process(root: Path) -> None:
    with serve_workspace(root, ProcessTable(term_grace=1.0)) as server:
        async with AgentClient(server.url, TOKEN) as client:
            stubborn = await client.exec("trap '' TERM; echo up; sleep 300 & wait", background=True)
            plain = await client.exec("sleep 300 & sleep 300", background=True)
            pids = [await started_pid(client, p.process_id) for p in (stubborn, plain)]
            await wait_until(lambda: output_contains(client, stubborn.process_id, "up"), message="the trap")
            assert all(group_members(pid) for pid in pids)
        await anyio.to_thread.run_sync(server.stop)
    assert [group_members(pid) for pid in pids] == [[], []]


async def test_after_shutdown_no_command_starts(tmp_path: Path) -> None:
    table = ProcessTable()
    await table.shutdown()
    for start in (table.run("true", tmp_path), table.start("true", tmp_path)):
        with pytest.raises(ApiError) as caught:
            await start
        assert caught.value.status == 503


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v0/fs/read", {"path": "a.txt"}),
        ("POST", "/api/v0/fs/write", {"path": "a.txt", "content": "x"}),
        ("POST", "/api/v0/fs/edit", {"path": "a.txt", "edits": [{"old": "a", "new": "b"}]}),
        ("POST", "/api/v0/exec", {"command": "touch pwned"}),
        ("GET", "/api/v0/processes", None),
        ("GET", "/api/v0/processes/x/output", None),
        ("POST", "/api/v0/processes/x/signal", {"signal": "KILL"}),
    ],
)
async def test_every_route_needs_the_token(
    server: WorkspaceServer, root: Path, method: str, path: str, body: object
) -> None:
    (root / "a.txt").write_text("a")
    async with httpx2.AsyncClient(base_url=server.url) as http:
        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"}):
            response = await http.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (headers, response.text)
            assert response.json()["message"] == "unauthorized"
    assert (root / "a.txt").read_text() == "a" and not (root / "pwned").exists()
