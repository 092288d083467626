"""The manager's side of the warm executor (see _zygote.py): ask it to fork executors, learn
their exit statuses, restart it if it dies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from .._tags import TAG_SPACE_SIZE, TAG_SPACE_VARIABLE
from .._wire.job import Job
from . import pidfd as _pidfd
from .boot import child_argv

log = logging.getLogger(__name__)

_UNKNOWN_EXIT = 255  # the zygote died before it could report a child's exit status


_WITH_FORK_MAX = 1 << 16
"""A fork request carries the run's job, environment and directory when that takes at most
this many bytes (one control socket message, limited to ~200 KiB by the kernel); else the
child gets them on its channel."""


class _Gone(ConnectionError):
    """The zygote is dead (found so before the request was sent)."""


def available() -> bool:
    """Whether forking from a zygote works here: POSIX fork, fd passing, and pidfds (the
    zygote reaps its children through them; Linux >= 5.3)."""
    return (
        hasattr(os, "fork")
        and hasattr(socket, "send_fds")
        and sys.platform == "linux"
        and _pidfd.WORKS
    )


class ForkedProcess:
    """A child of the zygote, with the part of asyncio.subprocess.Process the runners use."""

    def __init__(
        self,
        pid: int,
        clock_before: int | None = None,
        clock_after: int | None = None,
        *,
        has_job: bool = False,
    ) -> None:
        self.pid = pid
        self.has_job = has_job
        """Whether it was forked with its job, environment and directory (it then waits for
        "go"; else for ("run", changed, removed, cwd, job))."""
        self.clock_before = clock_before
        self.clock_after = clock_after
        """The zygote's boot clock (ns) just before and after it forked this child."""
        self.returncode: int | None = None
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    @property
    def ended(self) -> asyncio.Future[int]:
        """Resolved with the return code (never cancel it: ``wait`` shares it)."""
        return self._exited

    def exited(self, returncode: int) -> None:
        if self.returncode is None:
            self.returncode = returncode
            if not self._exited.done():
                self._exited.set_result(returncode)


class Zygote:
    """One warm executor process, started on first use and restarted if it dies."""

    def __init__(self, python: str | None = None, preload: Sequence[str] = ()) -> None:
        self._python = python or sys.executable
        self._preload = list(preload)
        self._process: asyncio.subprocess.Process | None = None
        self._socket: socket.socket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[int] | None = None
        self._pending: dict[int, asyncio.Future[tuple[int, int | None, int | None]]] = {}
        self._children: dict[int, ForkedProcess] = {}
        self._early_exits: dict[int, int] = {}
        self._next_request = 0
        self._environ: dict[str, str] = {}
        """The zygote's environment, as it reported it when ready."""
        self._starting: asyncio.Lock = asyncio.Lock()
        self._generation = 0
        """Counts the zygotes started: a run restarts only the one it found dead."""
        self.os_pid: int | None = None

    @property
    def generation(self) -> int:
        """How many warm executors were started so far: which one runs now."""
        return self._generation

    @property
    def environ(self) -> dict[str, str]:
        """The warm executor's own environment (a child forked with it is told no
        difference)."""
        return dict(self._environ)

    @property
    def alive(self) -> bool:
        return (
            self._process is not None
            and self._process.returncode is None
            and (self._reader is not None and not self._reader.done())
        )

    async def start(self) -> None:
        async with self._starting:
            if self.alive:
                return
            await self._stop()
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            ours.setblocking(False)
            try:
                argv = child_argv(
                    self._python, "zygote", [str(theirs.fileno()), *self._preload], path=sys.path
                )
                self._process = await asyncio.create_subprocess_exec(
                    *argv,
                    # Room each forked executor overwrites with its tag, in the block /proc
                    # shows as its environment (see _child/zygote.py, _retag).
                    env={**os.environ, TAG_SPACE_VARIABLE: " " * TAG_SPACE_SIZE},
                    pass_fds=(theirs.fileno(),),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    start_new_session=True,
                )
            except BaseException:
                ours.close()
                raise
            finally:
                theirs.close()
            self._socket = ours
            self._generation += 1
            loop = asyncio.get_running_loop()
            self._ready = loop.create_future()
            self._reader = loop.create_task(self._read(ours), name="aiobgproc-zygote")
            try:
                self.os_pid = await asyncio.wait_for(asyncio.shield(self._ready), 30.0)
            except BaseException:
                await self._stop()
                raise

    async def _read(self, control: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(control, 1 << 16)
                if not data:
                    return
                self._dispatch(marshal.loads(data))
        except (ConnectionError, OSError):
            return
        finally:
            self._lost()

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            self._environ = dict(message[2])
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(int(message[1]))
        elif kind == "forked":
            future = self._pending.pop(int(message[1]), None)
            if future is not None and not future.done():
                future.set_result(message[2:])
        elif kind == "exit":
            pid, code = int(message[1]), int(message[2])
            child = self._children.pop(pid, None)
            if child is None:
                self._early_exits[pid] = code
            else:
                child.exited(code)
        elif kind == "warning":
            log.warning("warm executor: %s", message[1])

    def environ_difference(self, env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
        """``env`` as a difference from the zygote's own environment (usually a few of the
        run's variables): far cheaper for a forked child to apply than a whole one."""
        base = self._environ
        changed = {name: value for name, value in env.items() if base.get(name) != value}
        removed = [name for name in base if name not in env]
        return changed, removed

    def _lost(self) -> None:
        """The zygote is gone: fail pending forks; watch orphaned children by pidfd."""
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(ConnectionError("the warm executor did not start"))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the warm executor died"))
        self._pending.clear()
        for child in list(self._children.values()):
            _watch_orphan(child)
        self._children.clear()

    async def fork(
        self,
        env: Mapping[str, str],
        cwd: str | None,
        out_fds: Sequence[int],
        channel_fd: int,
        job: Job | None = None,
    ) -> ForkedProcess:
        """A new executor process, forked with ``out_fds`` as stdout and stderr and ``channel_fd``
        as its channel. A zygote found dead (even only once asked) is restarted once; raises
        ConnectionError if it still cannot fork (the caller then spawns)."""
        if not self.alive:
            await self.start()
        generation = self._generation
        try:
            return await self._fork(env, cwd, out_fds, channel_fd, job)
        except _Gone:
            # Killed since the last run: we learn it as we ask (the end of its socket may
            # not be read yet), before anything was sent. A new one forks this run; if that
            # fails too, we give up. (A zygote that dies once it has the request may have
            # forked with these fds already: no second try with them.)
            await self._restart(generation)
            return await self._fork(env, cwd, out_fds, channel_fd, job)

    async def _restart(self, generation: int) -> None:
        """Replace the zygote of ``generation``, unless another run already did."""
        async with self._starting:
            if self._generation == generation:
                await self._stop()
        await self.start()

    async def _fork(
        self,
        env: Mapping[str, str],
        cwd: str | None,
        out_fds: Sequence[int],
        channel_fd: int,
        job: Job | None,
    ) -> ForkedProcess:
        control = self._socket
        if control is None or not self.alive:
            raise _Gone("the warm executor is not running")
        loop = asyncio.get_running_loop()
        self._next_request += 1
        request = self._next_request
        changed, removed = self.environ_difference(env)
        payload = marshal.dumps(("fork", request, changed, removed, cwd, job))  # type: ignore[arg-type]
        if len(payload) > _WITH_FORK_MAX:
            # Too big for one control message (a large input or environment): the child
            # gets all of it on its channel instead (see _zygote._child).
            job = None
            payload = marshal.dumps(("fork", request, None, None, None, None))
        future: asyncio.Future[tuple[int, int | None, int | None]] = loop.create_future()
        self._pending[request] = future
        try:
            while True:
                try:
                    socket.send_fds(control, [payload], [*out_fds, channel_fd])
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.001)
        except OSError as exc:
            self._pending.pop(request, None)
            error = _Gone if isinstance(exc, ConnectionError) else ConnectionError
            raise error(f"the warm executor is not reachable: {exc}") from exc
        pid, before, after = await future
        child = ForkedProcess(pid, before, after, has_job=job is not None)
        early = self._early_exits.pop(pid, None)
        if early is not None:
            child.exited(early)
        else:
            self._children[pid] = child
        return child

    async def _stop(self) -> None:
        control, self._socket = self._socket, None
        # The reader first: its pending sock_recv names the socket's fd in the selector,
        # and a closed fd's number may be reused at once (by a run's channel, say).
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if control is not None:
            control.close()
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), 5.0)
            except TimeoutError:
                process.kill()
                await process.wait()

    async def close(self) -> None:
        async with self._starting:
            await self._stop()


def _watch_orphan(child: ForkedProcess) -> None:
    """Learn when a child whose zygote died exits (its status is lost with the zygote)."""
    if not _pidfd.when_exited(child.pid, lambda: child.exited(_UNKNOWN_EXIT)):
        child.exited(_UNKNOWN_EXIT)
