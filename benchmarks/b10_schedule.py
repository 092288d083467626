"""B10 schedule fire delay: a schedule ``every=1`` second, fired by three ``aiobgproc worker``
subprocesses on one store, ``b10_fires`` times (30 in full mode, 10 in quick, 2 in smoke);
delay = the process's creation time (when a worker fired it) - the due time it fired for,
median and p95. A client here creates the schedule and reads what fired.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any, Final

from aiobgproc import Command, Manager
from benchmarks.harness import BenchError, Benchmark, Context, ms, percentile, run_loop, say

WORKERS: Final = 3
EVERY_S: Final = 1.0


async def _measure(context: Context) -> dict[str, Any]:
    fires = context.sizes.b10_fires
    location = context.stores.fresh()
    async with Manager(location, run=False):
        pass  # the store exists before the workers race to create it
    logs = [(context.scratch / f"b10-worker{index}.log").open("wb") for index in range(WORKERS)]
    workers = [
        context.children.start(
            [sys.executable, "-m", "aiobgproc", "worker", "--store", location],
            stdout=log,
            stderr=log,
        )
        for log in logs
    ]
    try:
        async with Manager(location, run=False) as client:
            info = await client.schedule("b10", Command(["true"]), every=EVERY_S)
            first_due = info.next_run_at.timestamp()
            deadline = time.monotonic() + fires * EVERY_S + 30
            while True:
                found = await client.list(meta={"schedule": "b10"}, limit=fires + 10)
                if len(found) >= fires:
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"b10: {len(found)} of {fires} fires in time")
                await asyncio.sleep(0.2)
            await client.unschedule("b10")
    finally:
        for worker in workers:
            await asyncio.to_thread(context.children.stop, worker)
        for log in logs:
            log.close()
    created = sorted(item.created_at.timestamp() for item in found)[:fires]
    delays = []
    for moment in created:
        due = first_due + round((moment - first_due) / EVERY_S - 0.49) * EVERY_S
        delays.append(moment - due)
    dues = {round((moment - first_due) / EVERY_S - 0.49) for moment in created}
    if len(dues) != len(created):
        raise BenchError("b10: a due time fired twice")
    say(f"  b10: {fires} fires, delays {min(delays) * 1000:.1f}-{max(delays) * 1000:.1f} ms")
    return {
        "b10_fire_delay_median_ms": ms(statistics.median(delays)),
        "b10_fire_delay_p95_ms": ms(percentile(delays, 95)),
        "b10_fires": fires,
    }


def run(context: Context) -> dict[str, Any]:
    return run_loop(_measure(context))


BENCHMARK: Final = Benchmark(
    "b10",
    run,
    keys=("b10_fire_delay_median_ms", "b10_fire_delay_p95_ms", "b10_fires"),
    targets={"b10_fire_delay_p95_ms": ("<", 1000.0, "")},
)
