"""B6 notice: a worker subprocess (``aiobgproc worker``) runs ``true``; a
``Manager(run=False)`` here waits for it; delay = when wait_for returned - the recorded
finished_at (each start at a random moment, 0-100 ms after the previous wait_for returned).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from typing import Any, Final

from aiobgproc import Command, Manager
from benchmarks.harness import (
    BenchError,
    Benchmark,
    Context,
    ms,
    percentile,
    run_command,
    run_loop,
)


async def _measure(context: Context) -> dict[str, Any]:
    location = context.stores.fresh()
    async with Manager(location, run=False):
        pass  # the store exists before the worker and this manager race to create it
    log = (context.scratch / "worker.log").open("wb")
    worker = context.children.start(
        [sys.executable, "-m", "aiobgproc", "worker", "--store", location],
        stdout=log,
        stderr=log,
    )
    delays: list[float] = []
    try:
        async with Manager(location, run=False) as manager:
            await run_command(manager, ["true"])  # the first one waits for the worker to come up
            rng = random.Random(6)
            for _ in range(context.sizes.b6_n):
                # Start at a random moment: otherwise each start falls at the same point of
                # the notice's polling cycle (right after the previous wait_for returned).
                await asyncio.sleep(rng.uniform(0.0, 0.1))
                process_id = await manager.start(Command(["true"]))
                info = await manager.wait_for(process_id, timeout=60)
                returned = time.time()
                if info.status != "finished" or info.finished_at is None:
                    raise BenchError(f"b6: process {process_id} ended {info.status}")
                delays.append(returned - info.finished_at.timestamp())
    finally:
        await asyncio.to_thread(context.children.stop, worker)
        log.close()
    return {
        "b6_median_ms": ms(statistics.median(delays)),
        "b6_p95_ms": ms(percentile(delays, 95)),
    }


def run(context: Context) -> dict[str, Any]:
    return run_loop(_measure(context))


BENCHMARK: Final = Benchmark(
    "b6",
    run,
    keys=("b6_median_ms", "b6_p95_ms"),
    targets={"b6_median_ms": ("<", 50.0, "")},
)
