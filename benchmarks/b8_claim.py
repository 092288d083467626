"""B8 claim at scale: the p50/p99 of one claim (taking one process for a manager) with
``b5_rows`` processes queued (100,000 in full and quick mode, 2,000 in smoke mode) over 20
queues with priorities, and a tenth as many delayed by an hour besides.

The store is filled through the public API (``Manager(run=False).start(..., queue=,
priority=, delay=)``, 16 at once). The claim is timed through the manager's store
(``Manager.store.claim``, the Store protocol's call that every manager's run loop makes),
one process at a time, as a manager with one free slot does: end to end a claim is hidden
behind spawning the process it takes.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Final

from aiobgproc import Command, Manager
from benchmarks.harness import Benchmark, Context, gather_limited, ms, percentile, run_loop, say

QUEUES: Final = 20
FILL_CONCURRENCY: Final = 16
DELAYED_EVERY: Final = 10  # one delayed process for this many queued


async def _fill(location: str, queued: int) -> None:
    delayed = queued // DELAYED_EVERY
    async with Manager(location, run=False) as client:

        async def one(index: int) -> None:
            await client.start(
                Command(["true"]),
                queue=f"q{index % QUEUES:02d}",
                priority=index % 7 - 3,
                delay=3600.0 if index < delayed else None,
            )

        await gather_limited(queued + delayed, FILL_CONCURRENCY, one)


async def _measure(context: Context) -> dict[str, Any]:
    sizes = context.sizes
    location = context.stores.fresh()
    began = time.perf_counter()
    await _fill(location, sizes.b5_rows)
    say(f"  b8: {sizes.b5_rows} queued over {QUEUES} queues in {time.perf_counter() - began:.1f} s")
    samples: list[float] = []
    async with Manager(location, run=False) as client:
        store = client.store
        for _ in range(20):  # warm the page cache and the connection
            await store.claim("b8-warm-up", time.time(), 1)
        for _ in range(sizes.b5_calls):
            started = time.perf_counter()
            claimed = await store.claim("b8", time.time(), 1)
            samples.append(time.perf_counter() - started)
            assert len(claimed) == 1
    return {
        "b8_claim_p50_ms": ms(statistics.median(samples)),
        "b8_claim_p99_ms": ms(percentile(samples, 99)),
        "b8_queued": sizes.b5_rows,
    }


def run(context: Context) -> dict[str, Any]:
    return run_loop(_measure(context))


BENCHMARK: Final = Benchmark(
    "b8",
    run,
    keys=("b8_claim_p50_ms", "b8_claim_p99_ms", "b8_queued"),
)
