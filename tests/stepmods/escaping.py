"""Steps that leave processes behind."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any


def leave_session_child(data: dict[str, Any]) -> dict[str, Any]:
    """Starts a child in a session of its own and returns without waiting for it."""
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    return {"child": child.pid}


def leave_group_child(data: dict[str, Any]) -> dict[str, Any]:
    """Starts a child in the executor's own session and returns without waiting for it."""
    child = subprocess.Popen(["sleep", "60"])
    return {"child": child.pid}


def leave_escaped_grandchild(data: dict[str, Any]) -> dict[str, Any]:
    """Runs a shell that starts a grandchild in a session of its own (ignoring SIGTERM) and
    exits: the grandchild is no child of the executor, and outside its session."""
    subprocess.run(["sh", "-c", data["script"], "outer", data["pidfile"]], check=True)
    with open(data["pidfile"], encoding="ascii") as handle:
        return {"grandchild": int(handle.read())}


def leave_daemon(data: dict[str, Any]) -> dict[str, Any]:
    """Daemonizes without exec, as python-daemon does (fork, setsid, fork, the middle one
    exits), and returns: the daemon is in no session of ours, descends from nothing of ours,
    and was never exec'd (its /proc environ is the executor's own block)."""
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:  # pragma: no cover - runs in the forked processes
        os.setsid()
        if os.fork() == 0:
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.write(write_end, str(os.getpid()).encode())
            os.close(write_end)
            time.sleep(60)
        os._exit(0)
    os.close(write_end)
    os.waitpid(middle, 0)
    daemon = int(os.read(read_end, 32))
    os.close(read_end)
    return {"daemon": daemon}
