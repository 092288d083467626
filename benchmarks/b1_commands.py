"""B1 commands: ``/bin/true`` through start + wait_for at concurrency 32, processes/s, vs raw
``asyncio.create_subprocess_exec`` + wait (stdout piped and read) under a semaphore of 32.

Each repetition measures the raw baseline, then a fresh Manager on a fresh store: a pair.
``b1_ratio`` is the median of the pairs' ratios, ``b1_ratio_range`` their range (issue 19:
the machine's drift over a run moves both sides of a pair); the rates are the medians.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any, Final

from aiobgproc import Manager
from benchmarks.harness import (
    Benchmark,
    Context,
    gather_limited,
    run_command,
    run_loop,
    say,
)

CONCURRENCY: Final = 32


async def _raw_true(_: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        "/bin/true", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
    )
    await proc.communicate()


async def _measure(context: Context) -> dict[str, Any]:
    sizes, stores = context.sizes, context.stores
    ours: list[float] = []
    raw: list[float] = []
    await gather_limited(CONCURRENCY, CONCURRENCY, _raw_true)  # warm the page cache
    for rep in range(sizes.reps):
        raw.append(sizes.b1_n / await gather_limited(sizes.b1_n, CONCURRENCY, _raw_true))
        # A manager polls its store while open: open it only for its own measurement.
        async with Manager(stores.fresh(), concurrency=CONCURRENCY) as manager:

            async def ours_true(_: int, manager: Manager = manager) -> None:
                await run_command(manager, ["/bin/true"])

            await gather_limited(CONCURRENCY, CONCURRENCY, ours_true)
            elapsed = await gather_limited(sizes.b1_n, CONCURRENCY, ours_true)
        ours.append(sizes.b1_n / elapsed)
        say(f"  b1 rep {rep + 1}: ours {ours[-1]:.0f}/s, raw {raw[-1]:.0f}/s")
    ours_rate, raw_rate = statistics.median(ours), statistics.median(raw)
    pairs = [mine / theirs for mine, theirs in zip(ours, raw, strict=True)]
    return {
        "b1_ratio": round(statistics.median(pairs), 3),
        "b1_ratio_range": [round(min(pairs), 3), round(max(pairs), 3)],
        "b1_ours_per_s": round(ours_rate, 1),
        "b1_raw_per_s": round(raw_rate, 1),
    }


def run(context: Context) -> dict[str, Any]:
    return run_loop(_measure(context))


BENCHMARK: Final = Benchmark(
    "b1",
    run,
    keys=("b1_ratio", "b1_ratio_range", "b1_ours_per_s", "b1_raw_per_s"),
    targets={"b1_ratio": (">=", 0.8, "")},
)
