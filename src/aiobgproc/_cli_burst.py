"""Who runs what the command line queues: when no live manager or worker that runs the
process's queue is on the store, ``run``, ``start``, ``proceed`` and ``restart`` start a
detached ``aiobgproc worker --burst`` that runs the queue and exits when it is empty."""

from __future__ import annotations

import os
import sys

from . import _clock, _location
from ._os import host as _host
from ._recovery import manager_alive
from .manager import Manager


async def make_sure_it_runs(manager: Manager, store: str | None, queue: str) -> None:
    """Start a detached burst worker unless a live manager or worker runs ``queue``."""
    if await needs_worker(manager, queue):
        spawn_burst_worker(_location.describe(store))


async def needs_worker(manager: Manager, queue: str) -> bool:
    """True when no live manager or worker that runs ``queue``'s processes is on the store
    (one that runs only other queues does not count)."""
    now, boottime = _clock.wall(), _host.boottime()
    for record in await manager.store.list_managers():
        serves = record.queues is None or queue in record.queues
        if (
            record.runs
            and serves
            and record.id != manager.id
            and manager_alive(record, now, boottime)
        ):
            return False
    return True


def spawn_burst_worker(store: str) -> None:
    """Start ``aiobgproc worker --burst`` detached (its own session, no terminal, not our
    child: a short-lived shell starts it in the background and is reaped here at once). It
    runs the queue and exits when it is empty."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        shell = os.posix_spawn(
            "/bin/sh",
            [
                "sh",
                "-c",
                '"$@" </dev/null >/dev/null 2>&1 &',
                "sh",
                sys.executable,
                "-m",
                "aiobgproc",
                "worker",
                "--burst",
                "--store",
                store,
            ],
            dict(os.environ),
            setsid=True,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull, 0),
                (os.POSIX_SPAWN_DUP2, devnull, 1),
                (os.POSIX_SPAWN_DUP2, devnull, 2),
            ],
        )
    finally:
        os.close(devnull)
    os.waitpid(shell, 0)
