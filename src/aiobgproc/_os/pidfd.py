"""Waiting for a process to exit through its pidfd (Linux >= 5.3), on the event loop.

The manager's side has this one pidfd watcher: spawn() reaps its children with it (no
child watcher thread per child, as asyncio's on 3.11), and the warm executor's client
learns with it when a child whose zygote died exits. (The warm executor watches its own
children by pidfd in an epoll loop: it runs no event loop, see _child/zygote.py.)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable


def _works() -> bool:
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


WORKS = _works()
"""Whether processes can be watched by pidfd here."""


def when_exited(pid: int, callback: Callable[[], None]) -> bool:
    """Call ``callback`` in the event loop once ``pid`` has exited. False when no pidfd
    could be opened for it (then nothing will be called)."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return False
    loop = asyncio.get_running_loop()

    def readable() -> None:
        loop.remove_reader(fd)
        os.close(fd)
        callback()

    loop.add_reader(fd, readable)
    return True


class PidfdProcess:
    """A child started by subprocess.Popen, reaped when its pidfd becomes readable in the
    event loop: the part of asyncio.subprocess.Process the runners use, without a watcher
    thread per child (~0.5 ms of CPU and a thread start each). Only ever waits for its own
    pid, so it cannot take another library's children."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.returncode: int | None = None
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = self._loop.create_future()
        if not when_exited(self.pid, self._poll):
            self._loop.call_soon(self._poll)  # cannot happen for our unreaped child

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    @property
    def ended(self) -> asyncio.Future[int]:
        """Resolved with the return code (never cancel it: ``wait`` shares it)."""
        return self._exited

    def _try_reap(self) -> bool:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            code = 255  # reaped by someone else (a process-wide SIGCHLD handler): status lost
        else:
            if pid == 0:
                return False
            code = os.waitstatus_to_exitcode(status)
        self.returncode = self._popen.returncode = code
        if not self._exited.done():
            self._exited.set_result(code)
        return True

    def _poll(self) -> None:
        """Reap it now (its pidfd said it exited), or look again shortly."""
        if not self._try_reap():
            self._loop.call_later(0.01, self._poll)
