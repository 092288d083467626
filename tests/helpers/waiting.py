"""Polling with a monotonic deadline: the tests never sleep a fixed time to wait for something."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil

from aiobgproc import Manager, ProcessInfo, Status

POLL_S = 0.01


async def until(
    predicate: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it is true; fail the test when ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(POLL_S)


async def until_status(
    manager: Manager, process_id: str, status: Status, *, timeout: float = 10.0
) -> ProcessInfo:
    """Poll until the process has ``status``; return that snapshot."""
    seen: list[ProcessInfo] = []

    async def reached() -> bool:
        info = await manager.info(process_id)
        seen[:] = [info]
        return info.status is status

    await until(reached, timeout=timeout, what=f"process {process_id} to be {status}")
    return seen[0]


async def until_output_contains(
    manager: Manager, process_id: str, needle: bytes, *, timeout: float = 10.0
) -> bytes:
    """Poll until the captured output contains ``needle``; return the output."""
    seen: list[bytes] = []

    async def contains() -> bool:
        seen[:] = [await manager.output(process_id)]
        return needle in seen[0]

    await until(contains, timeout=timeout, what=f"{needle!r} in the output of {process_id}")
    return seen[0]


def wait_for_file_command(flag: Path, before: str = "first", after: str = "second") -> list[str]:
    """argv of a command that prints ``before``, waits until ``flag`` exists, prints ``after``."""
    script = f'echo {before}; while [ ! -e "$1" ]; do sleep 0.01; done; echo {after}'
    return ["sh", "-c", script, "sh", str(flag)]


def is_alive(proc: psutil.Process) -> bool:
    """True while ``proc`` runs (a zombie or a vanished process counts as gone)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def descendants(os_pid: int) -> list[psutil.Process]:
    """The live process ``os_pid`` and all its descendants."""
    try:
        root = psutil.Process(os_pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


async def until_running(manager: Manager, process_id: str, *, timeout: float = 10.0) -> ProcessInfo:
    """Poll until the process runs and its OS pid is recorded; return that snapshot."""
    seen: list[ProcessInfo] = []

    async def running() -> bool:
        info = await manager.info(process_id)
        seen[:] = [info]
        return info.status is Status.RUNNING and info.os_pid is not None

    await until(running, timeout=timeout, what=f"process {process_id} to run with an OS pid")
    return seen[0]
