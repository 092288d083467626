"""B2 latency: a one-step process with a trivial step, start -> wait_for, sequential, p50/p95,
with the warm executor and with ``warm=False``; baseline: spawning and awaiting
``python -I -S -c pass``.

The warm manager preloads the step's module (``Manager(preload=[...])``), as huey's workers
import their tasks module once; ``b2_warm`` says whether the warm executor was available.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any, Final

from aiobgproc import Manager
from benchmarks.harness import (
    TRIVIAL_MODULE,
    Benchmark,
    Context,
    ms,
    one_step,
    percentile,
    run_loop,
    say,
)
from benchmarks.stores import AnyStores


async def _spawn_and_wait(argv: list[str]) -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
    )
    await proc.communicate()
    return time.perf_counter() - started


async def _step_latencies(stores: AnyStores, count: int, *, warm: bool) -> tuple[list[float], bool]:
    preload = [TRIVIAL_MODULE] if warm else []
    async with Manager(stores.fresh(), warm=warm, preload=preload) as manager:
        for _ in range(3):
            await one_step(manager)
        return [await one_step(manager) for _ in range(count)], manager.warm


async def _measure(context: Context) -> dict[str, Any]:
    sizes, stores = context.sizes, context.stores
    bare = [sys.executable, "-I", "-S", "-c", "pass"]
    for _ in range(3):
        await _spawn_and_wait(bare)
    raw = [await _spawn_and_wait(bare) for _ in range(sizes.b2_n)]
    warm, warm_active = await _step_latencies(stores, sizes.b2_n, warm=True)
    if not warm_active:
        say("  b2: the warm executor is not available here: both figures are cold spawns")
    cold, _ = await _step_latencies(stores, sizes.b2_cold_n, warm=False)
    return {
        "b2_p50_ms": ms(statistics.median(warm)),
        "b2_p95_ms": ms(percentile(warm, 95)),
        "b2_cold_p50_ms": ms(statistics.median(cold)),
        "b2_raw_python_p50_ms": ms(statistics.median(raw)),
        "b2_cold_p95_ms": ms(percentile(cold, 95)),
        "b2_raw_python_p95_ms": ms(percentile(raw, 95)),
        "b2_warm": warm_active,
    }


def run(context: Context) -> dict[str, Any]:
    return run_loop(_measure(context))


BENCHMARK: Final = Benchmark(
    "b2",
    run,
    keys=("b2_p50_ms", "b2_p95_ms", "b2_cold_p50_ms", "b2_raw_python_p50_ms"),
    targets={"b2_p50_ms": ("<", 5.0, "")},
)
