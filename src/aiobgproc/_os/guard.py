"""The manager's side of its guard: a small process that kills the manager's children
should the manager die (see aiobgproc._child.guard, and aiobgproc._wire for what they say)."""

from __future__ import annotations

import asyncio
import sys

from .boot import child_argv


class Guard:
    """The manager's side of its guard process (aiobgproc._child.guard): tells it which
    children to kill should the manager die. The protocol is in aiobgproc._wire."""

    def __init__(self, python: str | None = None) -> None:
        self._python = python or sys.executable
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        argv = child_argv(self._python, "guard", path=sys.path, site=False)
        self._process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def os_pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def _send(self, line: str) -> None:
        process = self._process
        if process is None or process.returncode is not None or process.stdin is None:
            return
        if process.stdin.is_closing():
            return
        process.stdin.write(line.encode())

    def watch(self, os_pid: int, started: float | None, tag: str) -> None:
        if started is not None:
            self._send(f"watch {os_pid} {started!r} {tag}\n")

    def forget(self, os_pid: int) -> None:
        self._send(f"forget {os_pid}\n")

    async def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5.0)
        except TimeoutError:
            process.kill()
            await asyncio.wait_for(process.wait(), 5.0)
