"""B12 events: a ``Manager(run=False)`` here follows ``events()`` while another OS process
(a client) starts and cancels ``b6_n`` * 3 commands, one every 0-100 ms at random; delay =
when the event reached the subscriber - when its change was committed (``Event.at``: the
store stamps it in the committing transaction; SQLite's clock has millisecond resolution),
median and p95.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any, Final

from aiobgproc import Manager
from benchmarks.harness import BenchError, Benchmark, Context, ms, percentile, run_loop

_CHANGER: Final = """
import asyncio, random, sys
from aiobgproc import Command, Manager
async def main(store, count):
    rng = random.Random(12)
    async with Manager(store, run=False) as client:
        for _ in range(count):
            await asyncio.sleep(rng.uniform(0.0, 0.1))
            await client.cancel(await client.start(Command(["true"])))
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def _measure(context: Context) -> dict[str, Any]:
    count = context.sizes.b6_n * 3
    location = context.stores.fresh()
    delays: list[float] = []
    async with Manager(location, run=False) as client:
        events = client.events()
        changer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CHANGER, location, str(count)
        )
        try:
            async with asyncio.timeout(count * 0.2 + 60):
                async for event in events:
                    delays.append(time.time() - event.at.timestamp())
                    if len(delays) == 2 * count:
                        break
        except TimeoutError:
            raise BenchError(f"b12: {len(delays)} of {2 * count} events in time") from None
        finally:
            if await changer.wait() != 0:
                raise BenchError("b12: the changing process failed")
    return {
        "b12_event_median_ms": ms(statistics.median(delays)),
        "b12_event_p95_ms": ms(percentile(delays, 95)),
    }


def run(context: Context) -> dict[str, Any]:
    return run_loop(_measure(context))


BENCHMARK: Final = Benchmark(
    "b12",
    run,
    keys=("b12_event_median_ms", "b12_event_p95_ms"),
    targets={"b12_event_median_ms": ("<", 50.0, "(PostgreSQL: 10 ms)")},
)
