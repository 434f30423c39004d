"""Commands run in the workspace: in the foreground with a timeout, or in the background under an id."""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from workdock.agent.child_env import workspace_env
from workdock.agent.workspace.output import OutputBuffer
from workdock.agent.workspace.text import skip_partial_start, utf8_prefix
from workdock.agentapi import ExecResult, ProcessInfo, ProcessOutput
from workdock.http_errors import ApiError
from workdock.process_groups import end_group, signal_group

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
OUTPUT_CAP = 64 * 1024
"""Most output a foreground command answers with; the marker of what was cut fits inside."""
_MARKER_ROOM = 256

BACKGROUND_HEAD = 64 * 1024
BACKGROUND_TAIL = 1024 * 1024
"""A background process keeps its first 64 KiB and last 1 MiB of output for reading on."""

READ_CHUNK = 64 * 1024
"""Most output one read of a background process returns."""

KEEP_FINISHED = 600.0
"""Seconds a finished background process is kept when nobody reads its output to the end."""

TERM_GRACE = 3.0
"""Seconds between SIGTERM and SIGKILL when a group is ended."""

DRAIN_LIMIT = 2.0
"""Seconds output may still arrive once the group is gone: a process that left the group (setsid)
can hold the pipe open forever, and must not hold the command's answer with it."""

SIGNALS = {"TERM": signal.SIGTERM, "KILL": signal.SIGKILL, "INT": signal.SIGINT}


def user_shell() -> str:
    """The shell the user works in: $SHELL, else the login shell from the password database."""
    shell = os.environ.get("SHELL")
    if not shell:
        try:
            shell = pwd.getpwuid(os.getuid()).pw_shell
        except KeyError:
            shell = ""
    return shell or "/bin/sh"


@dataclass(eq=False)
class _Process:
    id: str
    command: str
    cwd: Path
    background: bool
    pid: int
    output: OutputBuffer
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.monotonic)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    wrote: asyncio.Event = field(default_factory=asyncio.Event)  # set on new output, for followers
    returncode: int | None = None
    timed_out: bool = False
    finished_at: datetime | None = None
    finished: float | None = None
    task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return not self.done.is_set()

    @property
    def exit_code(self) -> int | None:
        """As a shell reports it: 128 + the signal's number when a signal ended the process."""
        if self.returncode is None:
            return None
        return 128 - self.returncode if self.returncode < 0 else self.returncode

    @property
    def signal(self) -> str | None:
        if self.returncode is None or self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name.removeprefix("SIG")
        except ValueError:
            return str(-self.returncode)

    def info(self) -> ProcessInfo:
        return ProcessInfo(
            id=self.id,
            command=self.command,
            cwd=str(self.cwd),
            pid=self.pid,
            background=self.background,
            running=self.running,
            exit_code=self.exit_code,
            signal=self.signal,
            timed_out=self.timed_out,
            started_at=self.started_at,
            finished_at=self.finished_at,
            output_bytes=self.output.total,
        )


async def _pump(stream: asyncio.StreamReader, process: _Process) -> None:
    while chunk := await stream.read(65536):
        process.output.write(chunk)
        process.wrote.set()


def _read_on(process: _Process, offset: int) -> tuple[str, int]:
    """New output from byte ``offset`` as text, and where to go on from. Bytes no longer kept are
    named in a marker; a character cut at the end waits for its rest (unless nothing more comes)."""
    buffer = process.output
    start, data = buffer.read(offset, READ_CHUNK)
    note = ""
    if start > offset:
        skip = skip_partial_start(data)
        start, data = start + skip, data[skip:]
        note = f"[... {start - offset} bytes of output not shown ...]\n"
    if process.running:
        data = utf8_prefix(data, len(data))
    return note + data.decode("utf-8", errors="replace"), start + len(data)


class ProcessTable:
    """Every process the workspace operations start, running or finished and not yet collected.

    Each runs ``$SHELL -c COMMAND`` in a new session (so its own process group), stdin from
    /dev/null, stdout and stderr into one pipe. One supervisor task per process reads the pipe,
    enforces the timeout, and ends the group when the shell exits, times out, is stopped, or the
    table shuts down: no process outlives its command.
    """

    def __init__(
        self,
        *,
        environment: Callable[[], dict[str, str]] = workspace_env,
        shell: str | None = None,
        keep_finished: float = KEEP_FINISHED,
        term_grace: float = TERM_GRACE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._environment = environment  # a command's whole environment (see agent/child_env.py)
        self.shell = shell or user_shell()
        self._keep_finished = keep_finished
        self._term_grace = term_grace
        self._clock = clock
        self._processes: dict[str, _Process] = {}
        self._closed = False

    # ---- starting --------------------------------------------------------------------------------

    async def run(
        self,
        command: str,
        cwd: Path,
        timeout: float = DEFAULT_TIMEOUT,
        on_output: Callable[[str], None] | None = None,
    ) -> ExecResult:
        """Run ``command`` to its end (or its timeout) and answer with its exit code and output;
        ``on_output`` is handed the output as it comes (past what is kept, a marker says how much
        it missed)."""
        process = await self._spawn(
            command,
            cwd,
            background=False,
            timeout=timeout,
            output=OutputBuffer(OUTPUT_CAP // 2, OUTPUT_CAP // 2 - _MARKER_ROOM),
        )
        try:
            if on_output is not None:
                await self._follow(process, on_output)
            await process.done.wait()
        finally:
            # Cancelled (the caller went away, the server is stopping): the command goes too.
            process.stop.set()
        text, truncated = process.output.render()
        if process.exit_code is None or process.finished is None:
            raise ApiError(500, "lost track of the command", "its supervisor failed; see the agent's log")
        return ExecResult(
            exit_code=process.exit_code,
            output=text,
            truncated=truncated,
            timed_out=process.timed_out,
            signal=process.signal,
            duration_ms=round((process.finished - process.started) * 1000),
        )

    @staticmethod
    async def _follow(process: _Process, on_output: Callable[[str], None]) -> None:
        """Hand on every piece of output until the process is done and all of it was handed on."""
        offset = 0
        while True:
            process.wrote.clear()
            before = offset
            text, offset = _read_on(process, offset)
            if text:
                on_output(text)
            if process.done.is_set() and offset >= process.output.total:
                return
            if before < offset < process.output.total:
                continue  # more is there already
            wrote = asyncio.ensure_future(process.wrote.wait())
            done = asyncio.ensure_future(process.done.wait())
            try:
                await asyncio.wait({wrote, done}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                wrote.cancel()
                done.cancel()

    async def start(self, command: str, cwd: Path, timeout: float | None = None) -> str:
        """Start ``command`` in the background; its id reads its output and signals it."""
        process = await self._spawn(
            command,
            cwd,
            background=True,
            timeout=timeout,
            output=OutputBuffer(BACKGROUND_HEAD, BACKGROUND_TAIL),
        )
        return process.id

    async def _spawn(
        self, command: str, cwd: Path, *, background: bool, timeout: float | None, output: OutputBuffer
    ) -> _Process:
        if self._closed:
            raise ApiError(503, "shutting down", "the agent is stopping and starts no more commands")
        env = self._environment()
        try:
            child = await asyncio.create_subprocess_exec(
                self.shell,
                "-c",
                command,
                cwd=cwd,
                env=env,
                start_new_session=True,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            raise ApiError(500, "could not start the shell", f"{self.shell}: {exc.strerror or exc}") from exc
        process = _Process(
            id=self._new_id(), command=command, cwd=cwd, background=background, pid=child.pid, output=output
        )
        self._processes[process.id] = process
        process.task = asyncio.create_task(
            self._supervise(process, child, timeout), name=f"workspace process {process.id}"
        )
        if self._closed:  # the table closed while the shell was starting
            process.stop.set()
        return process

    def _new_id(self) -> str:
        while (candidate := secrets.token_hex(6)) in self._processes:
            pass
        return candidate

    async def _supervise(
        self, process: _Process, child: asyncio.subprocess.Process, timeout: float | None
    ) -> None:
        assert child.stdout is not None
        pump = asyncio.create_task(_pump(child.stdout, process))
        exited = asyncio.create_task(child.wait())
        stopped = asyncio.create_task(process.stop.wait())
        try:
            done, _ = await asyncio.wait(
                {exited, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            process.timed_out = not done
            stopped.cancel()
            # Whether the shell exited, timed out or was stopped, what is left of its group goes:
            # a job it left running in the background would hold the pipe and escape every limit.
            await end_group(child.pid, self._term_grace)
            await exited
            try:
                await asyncio.wait_for(pump, DRAIN_LIMIT)
            except TimeoutError:
                pass
        except BaseException as exc:
            # Cancelled from outside (the loop is closing) or failed: no time for grace, but nothing
            # survives.
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("supervising process %s (pid %d) failed", process.id, child.pid)
            signal_group(child.pid, signal.SIGKILL)
            pump.cancel()
            stopped.cancel()
            raise
        finally:
            # Always marked finished, so nobody waits on it forever.
            process.returncode = child.returncode
            process.finished = self._clock()
            process.finished_at = datetime.now(UTC)
            process.done.set()
            if not process.background:
                # Its answer carries its output; nobody will come back for it.
                self._processes.pop(process.id, None)

    # ---- looking at them ---------------------------------------------------------------------------

    def _prune(self) -> None:
        now = self._clock()
        for key, process in list(self._processes.items()):
            if process.finished is not None and now - process.finished >= self._keep_finished:
                del self._processes[key]

    def _get(self, process_id: str) -> _Process:
        self._prune()
        process = self._processes.get(process_id)
        if process is None:
            raise ApiError(
                404,
                "no such process",
                f"{process_id!r} is not running, and if it ran its output was read or expired",
            )
        return process

    def list_all(self) -> list[ProcessInfo]:
        self._prune()
        return [p.info() for p in sorted(self._processes.values(), key=lambda p: p.started)]

    def output(self, process_id: str, offset: int | None = None) -> ProcessOutput:
        """Output from byte ``offset`` on (at most READ_CHUNK bytes), or without one the last READ_CHUNK.

        Reading a finished process's output to its end collects the process.
        """
        process = self._get(process_id)
        running = process.running  # read once: the answer must not mix two states
        buffer = process.output
        total = buffer.total
        asked = 0 if offset is None else offset
        start, data = buffer.read(max(total - READ_CHUNK, 0) if offset is None else offset, READ_CHUNK)
        # Never split a character: skip the tail of one cut before the start, and leave a partial one
        # at the end for the next read (unless nothing more can come).
        skip = skip_partial_start(data) if start > asked else 0
        start, data = start + skip, data[skip:]
        end = start + len(data)
        if end < total or running:
            data = utf8_prefix(data, len(data))
            end = start + len(data)
        if not running and end >= total:
            self._processes.pop(process.id, None)
        return ProcessOutput(
            id=process.id,
            output=data.decode("utf-8", errors="replace"),
            offset=start,
            next_offset=end,
            truncated=start > asked or end < total,
            running=running,
            exit_code=process.exit_code,
            signal=process.signal,
            timed_out=process.timed_out,
        )

    def signal(self, process_id: str, name: str) -> ProcessInfo:
        """Send TERM, KILL or INT to the process's whole group (as Ctrl-C in a terminal does)."""
        process = self._get(process_id)
        if process.running and signal_group(process.pid, SIGNALS[name]):
            return process.info()
        code = "" if process.exit_code is None else f" (exit code {process.exit_code})"
        raise ApiError(409, "process has exited", f"{process_id} already exited{code}; no signal was sent")

    # ---- ending ------------------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """End every process group (SIGTERM, SIGKILL after the grace) and wait until they are gone."""
        self._closed = True
        # Looped: a command whose start was already under way when the table closed joins late.
        while tasks := [p.task for p in self._processes.values() if p.task is not None and not p.task.done()]:
            for process in self._processes.values():
                process.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
