"""Steps for the durability tests: each leaves a trace of every time its body runs.

Every step appends one line ``process_id:step:attempt`` to the file ``data["log"]`` when its
body starts, taking the process id and the attempt from the environment the manager gives
every executor (``AIOBGPROC_PROCESS_ID``, ``AIOBGPROC_ATTEMPT``). Counting the lines per
``process_id:step`` shows how often a step body ran, and in which attempt.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

GATE_TIMEOUT = 60.0  # a gated step gives up after this many seconds


def attempt() -> int:
    return int(os.environ["AIOBGPROC_ATTEMPT"])


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one line with a single O_APPEND write: lines of concurrent writers never mix."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _trace(data: dict[str, Any], name: str) -> None:
    append_line(data["log"], f"{os.environ['AIOBGPROC_PROCESS_ID']}:{name}:{attempt()}")


def _result(data: dict[str, Any], name: str) -> dict[str, Any]:
    # The executor's parent: the manager that ran the step, or its warm executor.
    return {**data, f"{name}_attempt": attempt(), "parent_pid": os.getppid()}


def logged(
    data: dict[str, Any], name: str, sleep: float = 0.0, child: bool = False
) -> dict[str, Any]:
    """Trace, then sleep ``sleep`` seconds (in a ``sleep`` child process when ``child``)."""
    _trace(data, name)
    if sleep and child:
        subprocess.run(["sleep", str(sleep)], check=True)
    elif sleep:
        time.sleep(sleep)
    return _result(data, name)


def gated(data: dict[str, Any], name: str, say_in_attempt: int | None = None) -> dict[str, Any]:
    """Trace, wait until the file ``data["gate"]`` exists, then append the same line to
    ``data["ends"]`` (the body has finished: only its result is left to record). In attempt
    ``say_in_attempt`` it also prints a line just before returning."""
    _trace(data, name)
    gate = Path(data["gate"])
    deadline = time.monotonic() + GATE_TIMEOUT
    while not gate.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{gate} did not appear within {GATE_TIMEOUT} s")
        time.sleep(0.005)
    if attempt() == say_in_attempt:
        print(f"{name}: attempt {attempt()} is done", flush=True)
    if "ends" in data:
        append_line(data["ends"], f"{os.environ['AIOBGPROC_PROCESS_ID']}:{name}:{attempt()}")
    return _result(data, name)


def stamp(data: dict[str, Any]) -> dict[str, Any]:
    """Return the wall-clock time at which the step body started."""
    return {**data, "body_started": time.time()}
