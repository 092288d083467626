"""Well-behaved steps: data flow through sync and async functions and classes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import aiobgproc

GATE_TIMEOUT = 60.0  # a step waiting on a gate file gives up after this many seconds


def wait_for_file(path: Path, timeout: float = GATE_TIMEOUT) -> None:
    """Block until ``path`` exists: the test creates it when it has seen what it wanted."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.005)


def add(data: dict[str, Any], key: str, value: Any = True) -> dict[str, Any]:
    return {**data, key: value}


async def add_async(data: dict[str, Any], key: str, value: Any = True) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {**data, key: value}


class Scale:
    """A class step: built with its arguments, then ``execute(data)``."""

    def __init__(self, key: str, *, factor: int) -> None:
        self.key = key
        self.factor = factor

    def execute(self, data: dict[str, Any]) -> dict[str, Any]:
        return {**data, self.key: data[self.key] * self.factor}


class ScaleAsync:
    def __init__(self, key: str, *, factor: int) -> None:
        self.key = key
        self.factor = factor

    async def execute(self, data: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {**data, self.key: data[self.key] * self.factor}


def nothing(data: dict[str, Any]) -> None:
    return None


def echo(data: dict[str, Any]) -> dict[str, Any]:
    return data


def seen(data: dict[str, Any]) -> dict[str, Any]:
    """Wraps its input, so a test can see exactly what the step received."""
    return {"seen": data}


def whoami(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "os_pid": os.getpid()}


async def loop_id(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "loop": id(asyncio.get_running_loop())}


def environ(data: dict[str, Any]) -> dict[str, Any]:
    """The executor's environment variables named in ``data["names"]`` (None: unset)."""
    return {name: os.environ.get(name) for name in data["names"]}


def measure(data: dict[str, Any]) -> dict[str, Any]:
    blob: str = data["blob"]
    return {"length": len(blob), "head": blob[:8], "tail": blob[-8:]}


def record(data: dict[str, Any], name: str) -> dict[str, Any]:
    """Append this step's name to the file ``data["log"]``: shows which steps ran, and how often."""
    with Path(data["log"]).open("a") as log:
        log.write(name + "\n")
    return data


def gated(data: dict[str, Any]) -> dict[str, Any]:
    """Report half-way, then wait until the test creates ``data["gate"]``."""
    aiobgproc.report_progress(0.5, "half")
    wait_for_file(Path(data["gate"]))
    return {**data, "os_pid": os.getpid()}


def sleep_with_child(data: dict[str, Any]) -> dict[str, Any]:
    """Start a long ``sleep`` child, write both OS pids to ``data["pids"]``, then sleep long."""
    child = subprocess.Popen(["sleep", "600"])
    pids = Path(data["pids"])
    partial = pids.with_suffix(".part")
    partial.write_text(f"{os.getpid()} {child.pid}")
    partial.rename(pids)  # atomically: the test never reads half a file
    time.sleep(600)
    return data
