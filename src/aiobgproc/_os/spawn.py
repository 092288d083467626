"""Child processes: spawn in a session of their own, read their output, kill their whole tree.

This module knows processes, not steps or stores. Rules it keeps (docs/design.md):
- every child gets its own session, so one signal reaches everything it started;
- stdout and stderr each go to a pipe that we own, read continuously, so the child never
  blocks and nothing a grandchild holds open can make waiting for the exit hang; each chunk
  is handed on with its stream (STDOUT, STDERR);
- killing is SIGTERM to every member of the tree, a bounded grace, then SIGKILL; members are
  found by session, by descent and by an environment tag, and checked by create time so a
  reused pid is never signalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, cast

from .. import _clock
from .._wire.job import Job
from . import pidfd as _pidfd
from . import pidtime as _pidtime
from . import tree as _tree
from .zygote import Zygote

log = logging.getLogger(__name__)

_environ_copy: list[tuple[dict[bytes, bytes], dict[str, str]]] = []  # the one last copy


def environment() -> dict[str, str]:
    """A copy of ``os.environ``, for a child. Copying it decodes every variable (~50 us with a
    few dozen): the decoded copy is kept while the raw bytes (``os.environ._data``, the same
    since Python 3.0) compare equal, which costs ~1 us."""
    raw = getattr(os.environ, "_data", None)
    if not isinstance(raw, dict):
        return dict(os.environ)
    if not _environ_copy or _environ_copy[0][0] != raw:
        _environ_copy[:] = [(dict(raw), dict(os.environ))]
    return dict(_environ_copy[0][1])


_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

STDOUT: Final = 1
STDERR: Final = 2
OnOutput = Callable[[int, bytes], bool]
"""``on_output(stream, data)``: a chunk read from STDOUT or STDERR; False pauses reading."""


class PipeReader(asyncio.Protocol):
    """Hands every chunk read from a pipe to ``on_data``; pauses when that says so."""

    def __init__(self, on_data: Callable[[bytes], bool]) -> None:
        self._on_data = on_data
        self.transport: asyncio.ReadTransport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Any loop's read-pipe transport (uvloop's is no asyncio.ReadTransport subclass).
        self.transport = cast(asyncio.ReadTransport, transport)

    def data_received(self, data: bytes) -> None:
        if not self._on_data(data) and self.transport is not None:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if not self.closed.done():
            self.closed.set_result(None)


class PipeReaders:
    """A child's stdout and stderr readers, paused, resumed and closed together."""

    def __init__(self, readers: Sequence[PipeReader]) -> None:
        self._readers = tuple(readers)
        self.closed: asyncio.Future[Any] = asyncio.gather(*(r.closed for r in self._readers))

    def resume(self) -> None:
        for reader in self._readers:
            reader.resume()

    def close(self) -> None:
        for reader in self._readers:
            reader.close()


class ProcessHandle(Protocol):
    """What the runners need of a child: a PidfdProcess, an AsyncioProcess (where pidfds
    are missing) or a zygote's ForkedProcess."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    @property
    def ended(self) -> asyncio.Future[int]:
        """Resolved with the return code; never cancel it (``wait`` shares it)."""
        ...

    async def wait(self) -> int: ...


class AsyncioProcess:
    """asyncio's Process (where pidfds are missing) as a ProcessHandle."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.pid = process.pid
        self.ended: asyncio.Future[int] = asyncio.ensure_future(process.wait())

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    async def wait(self) -> int:
        return await asyncio.shield(self.ended)


@dataclass(slots=True)
class Child:
    """A spawned child: its handle, and what identifies its tree later."""

    process: ProcessHandle
    os_pid: int
    started: float | None
    """The OS create time of the child (psutil), to tell it from a later process with its pid."""
    reader: PipeReaders
    has_job: bool = False
    """Forked by the warm executor with its job (it then waits for "go", not a job)."""
    spawned_at: float = field(default_factory=_clock.monotonic)
    """When it was started (a reused executor: when this run began)."""
    first_pid: int | None = None
    """A reused executor: the last pid handed out when this run began (see _tree)."""

    @property
    def recent(self) -> bool:
        """Young enough for a cheap sweep of its tree (see _tree.RECENT_SECONDS)."""
        return _clock.monotonic() - self.spawned_at < _tree.RECENT_SECONDS


_devnull_fd: list[int] = []


def _devnull() -> int:
    """/dev/null for children's stdin, opened once (subprocess.DEVNULL opens it anew for
    every child)."""
    if not _devnull_fd:
        _devnull_fd.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    return _devnull_fd[0]


def _enlarge_pipe(fd: int) -> None:
    # A 1 MiB pipe triples read throughput (fewer, larger reads); Linux only, best effort.
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_SIZE)


def _output_pipes() -> tuple[list[int], list[int]]:
    """Two pipes, stdout's and stderr's: their read ends (ours) and write ends (the child's)."""
    out_read, out_write = os.pipe2(os.O_CLOEXEC)
    try:
        err_read, err_write = os.pipe2(os.O_CLOEXEC)
    except BaseException:
        os.close(out_read)
        os.close(out_write)
        raise
    for fd in (out_read, err_read):
        _enlarge_pipe(fd)
    return [out_read, err_read], [out_write, err_write]


def _close_all(fds: Sequence[int]) -> None:
    for fd in fds:
        os.close(fd)


async def spawn(
    argv: Sequence[str],
    *,
    on_output: OnOutput,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    stdin: int | None = None,
    pass_fds: Sequence[int] = (),
) -> Child:
    """Start ``argv`` in a new session with stdout and stderr on two pipes read into
    ``on_output``; ``stdin``: a file descriptor for its stdin (None: /dev/null).

    Raises OSError (e.g. FileNotFoundError) when the program cannot be started.
    """
    read_fds, write_fds = _output_pipes()
    options: dict[str, Any] = {
        "stdin": _devnull() if stdin is None else stdin,
        "stdout": write_fds[0],
        "stderr": write_fds[1],
        "cwd": cwd,
        "env": dict(env) if env is not None else None,
        "start_new_session": True,
        "pass_fds": tuple(pass_fds),
    }
    process: ProcessHandle
    before = _pidtime.boot_clock_ns()
    try:
        if _pidfd.WORKS:
            # As asyncio itself does: Popen forks and execs synchronously, in the loop thread.
            process = _pidfd.PidfdProcess(subprocess.Popen(argv, **options))  # noqa: ASYNC220
        else:
            process = AsyncioProcess(await asyncio.create_subprocess_exec(*argv, **options))
    except BaseException:
        _close_all(read_fds)
        raise
    finally:
        _close_all(write_fds)
    started = _pidtime.new_child_create_time(process.pid, before, _pidtime.boot_clock_ns())
    return await _adopt(process, read_fds, on_output, started)


async def _attach(
    process: ProcessHandle, read_fds: Sequence[int], on_output: OnOutput, started: float | None
) -> Child:
    """Start reading a just-started child's output pipes. ``started``: its create time
    (None: already gone, nothing left to identify)."""
    loop = asyncio.get_running_loop()
    pipes = [os.fdopen(fd, "rb", buffering=0) for fd in read_fds]
    readers = [PipeReader(functools.partial(on_output, stream)) for stream in (STDOUT, STDERR)]
    connected = 0
    try:
        for reader, pipe in zip(readers, pipes, strict=True):
            await loop.connect_read_pipe(functools.partial(_same, reader), pipe)
            connected += 1
    except BaseException:
        for reader in readers[:connected]:
            reader.close()
        for pipe in pipes[connected:]:
            pipe.close()
        raise
    return Child(process=process, os_pid=process.pid, started=started, reader=PipeReaders(readers))


def _same(reader: PipeReader) -> PipeReader:
    return reader


async def spawn_forked(
    zygote: Zygote,
    *,
    on_output: OnOutput,
    channel_fd: int,
    cwd: str | None = None,
    env: Mapping[str, str],
    job: Job | None = None,
) -> Child:
    """Like spawn, but the child is forked by the warm executor (see _zygote.py): the same
    session, pipe and channel set-up, without interpreter start-up. ``job`` goes with the
    fork when small (then ``child.process.has_job``). Raises ConnectionError when the
    zygote cannot be reached (the caller falls back to spawn)."""
    read_fds, write_fds = _output_pipes()
    try:
        process = await zygote.fork(env, cwd, write_fds, channel_fd, job)
    except BaseException:
        _close_all(read_fds)
        raise
    finally:
        _close_all(write_fds)
    started = _pidtime.new_child_create_time(process.pid, process.clock_before, process.clock_after)
    child = await _adopt(process, read_fds, on_output, started)
    child.has_job = process.has_job
    return child


async def attach_reused(
    process: ProcessHandle, started: float | None, *, on_output: OnOutput
) -> tuple[Child, list[int]]:
    """A reused executor (see executor_pool) as the child of a new run: new stdout and
    stderr pipes, read into ``on_output``; returns the child and the pipes' write ends, for
    the caller to send the executor (and then close)."""
    first_pid = _tree.last_pid()
    read_fds, write_fds = _output_pipes()
    try:
        child = await _attach(process, read_fds, on_output, started)
    except BaseException:
        _close_all(write_fds)
        raise
    child.first_pid = first_pid
    if first_pid is None:  # cannot tell which pids are new: its sweeps look at them all
        child.spawned_at = float("-inf")
    return child, write_fds


async def _adopt(
    process: ProcessHandle, read_fds: Sequence[int], on_output: OnOutput, started: float | None
) -> Child:
    """Count a just-started child among this process's children (tree sweeps skip them)
    until it is reaped, and start reading its output; a child whose reading cannot start
    is killed with its session, not left running unwatched."""
    pid = process.pid
    _tree.add_child(pid)
    process.ended.add_done_callback(lambda _: _tree.forget_child(pid))
    try:
        return await _attach(process, read_fds, on_output, started)
    except BaseException:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)  # its own session: the group is its pid
        raise


async def wait_exit(child: Child, timeout: float | None) -> int | None:
    """The child's return code, or None if it is still running after ``timeout`` seconds."""
    if child.process.returncode is not None:
        return child.process.returncode  # the common case: no task, no timer
    ended = child.process.ended
    done, _ = await asyncio.wait({ended}, timeout=timeout)  # never cancels ``ended``
    return ended.result() if done else None
