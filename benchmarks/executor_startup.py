"""Executor start-up: how long a fresh executor takes to run one trivial step.

Compares, on this machine, in one run:
- baseline: `python -I -S -c pass` spawned with asyncio and awaited;
- `python -I -S -c "import asyncio, json, sqlite3"` (what a naive executor would pay);
- the aiobgproc executor: spawn, send the job, receive the step's result, exit;
- a one-step process end to end through a Manager (start → wait_for).

    python benchmarks/executor_startup.py [--runs 100] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiobgproc import Manager, Process, Step
from aiobgproc._os.boot import child_argv
from aiobgproc._wire import frames
from aiobgproc._wire.job import Job


async def spawn_and_wait(argv: list[str]) -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*argv)
    await proc.wait()
    return time.perf_counter() - started


async def executor_once() -> float:
    ours, theirs = socket.socketpair()
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *child_argv(None, "executor", [str(theirs.fileno())]), pass_fds=(theirs.fileno(),)
    )
    theirs.close()
    reader, writer = await asyncio.open_connection(sock=ours)
    job: Job = {
        "process_id": "bench",
        "attempt": 1,
        "sys_path": sys.path,
        "steps": [
            {
                "name": "0",
                "target": "benchmarks.trivial_steps:noop",
                "args": [],
                "kwargs": {},
                "interrupt": False,
            }
        ],
        "start": 0,
        "input": {"x": 1},
    }
    writer.write(frames.encode(frames.job(job)))
    await writer.drain()
    while True:
        size = int.from_bytes(await reader.readexactly(4), "big")
        frame = frames.decode(await reader.readexactly(size))
        if frame[0] == frames.DONE:
            writer.write(frames.encode(frames.exit_now()))
            await writer.drain()
            break
    await proc.wait()
    elapsed = time.perf_counter() - started
    writer.close()
    return elapsed


async def manager_once(manager: Manager) -> float:
    started = time.perf_counter()
    process_id = await manager.start(Process([Step("benchmarks.trivial_steps:noop")]))
    await manager.wait_for(process_id, timeout=30)
    return time.perf_counter() - started


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 2),
    }


async def main(runs: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    bare = [sys.executable, "-I", "-S", "-c", "pass"]
    heavy = [sys.executable, "-I", "-S", "-c", "import asyncio, json, sqlite3"]
    cases: list[tuple[str, Callable[[], Awaitable[float]]]] = [
        ("python_pass", lambda: spawn_and_wait(bare)),
        ("python_asyncio_json_sqlite3", lambda: spawn_and_wait(heavy)),
        ("executor_one_step", executor_once),
    ]
    for name, make in cases:
        await make()  # warm the page cache
        results[name] = summary([await make() for _ in range(runs)])
    with tempfile.TemporaryDirectory() as directory:
        async with Manager(os.path.join(directory, "bench.db"), concurrency=1) as manager:
            await manager_once(manager)
            results["manager_one_step_process"] = summary(
                [await manager_once(manager) for _ in range(runs)]
            )
    results["executor_vs_python_pass"] = round(
        results["executor_one_step"]["p50_ms"] / results["python_pass"]["p50_ms"], 2
    )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    figures = asyncio.run(main(options.runs))
    if options.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:32} {value}")
