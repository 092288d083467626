"""Steps for reused executors (Manager(reuse_executors=N)): what one run may leave to the next."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

RUNS_HERE: list[str] = []
"""Module state: the processes this executor ran (reused executors share it, documented)."""


def report(data: dict[str, Any]) -> dict[str, Any]:
    """Prints its process id on stdout and stderr; returns what tells one run from another."""
    process_id = os.environ["AIOBGPROC_PROCESS_ID"]
    RUNS_HERE.append(process_id)
    print(f"out {process_id}")
    print(f"err {process_id}", file=sys.stderr)
    return {
        "os_pid": os.getpid(),
        "process": process_id,
        "attempt": os.environ.get("AIOBGPROC_ATTEMPT"),
        "extra": os.environ.get("REUSE_EXTRA"),
        "cwd": os.getcwd(),
        "home": os.environ.get("HOME"),
        "path": os.environ.get("PATH"),
        "runs_here": len(RUNS_HERE),
    }


def crash(data: dict[str, Any]) -> dict[str, Any]:
    os._exit(7)


def fail(data: dict[str, Any]) -> dict[str, Any]:
    raise ValueError("this step fails")


def leave_thread(data: dict[str, Any]) -> dict[str, Any]:
    """Leaves a thread running (until ``data["gate"]`` exists): the executor is not reused."""

    def linger() -> None:
        deadline = time.monotonic() + 60
        while not Path(data["gate"]).exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    threading.Thread(target=linger, daemon=True).start()
    return {"os_pid": os.getpid()}


def redirect_streams(data: dict[str, Any]) -> dict[str, Any]:
    """Replaces sys.stdout and sys.stderr and leaves them so, and changes directory to a
    directory it then removes."""
    import io

    sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
    gone = Path(data["gone"])
    gone.mkdir()
    os.chdir(gone)
    gone.rmdir()
    return {"os_pid": os.getpid()}


def mutate_environ(data: dict[str, Any]) -> dict[str, Any]:
    """Sets a variable, removes one and changes one, and leaves them so."""
    os.environ["REUSE_EXTRA"] = "leaked"
    os.environ.pop("HOME", None)
    os.environ["PATH"] = "/nowhere"
    return {"os_pid": os.getpid()}


def nap(data: dict[str, Any]) -> dict[str, Any]:
    time.sleep(data.get("nap", 0.05))
    return {"os_pid": os.getpid()}


def print_then_replace_stdout(data: dict[str, Any]) -> dict[str, Any]:
    """Prints without a newline (it stays in the stream's buffer), then replaces sys.stdout."""
    import io

    sys.stdout.write(f"unflushed {os.environ['AIOBGPROC_PROCESS_ID']}")
    sys.stdout = io.StringIO()
    return {"os_pid": os.getpid()}


def close_stdout(data: dict[str, Any]) -> dict[str, Any]:
    sys.stdout.close()
    return {"os_pid": os.getpid()}


def set_timer(data: dict[str, Any]) -> dict[str, Any]:
    """Leaves a timer whose SIGALRM would kill the executor a moment later."""
    import signal

    signal.setitimer(signal.ITIMER_REAL, data["seconds"])
    return {"os_pid": os.getpid()}


def zombies(data: dict[str, Any]) -> dict[str, Any]:
    """This executor's children that are zombies."""
    found = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as handle:
            for pid in handle.read().split():
                try:
                    with open(f"/proc/{pid}/stat") as stat:
                        if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                            found.append(int(pid))
                except OSError:
                    continue
    return {"os_pid": os.getpid(), "zombies": found}
