"""B11 input: a manager here runs a command with ``stdin=PIPE``; another OS process (a
client) calls ``send_input`` ``b6_n`` * 3 times, one every 0-100 ms at random, each line the
wall time of the call; the command prints, for each line it reads, its reading time minus
that. Delay = from the call to the child receiving the bytes: median and p95.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from typing import Any, Final

from aiobgproc import PIPE, Command, Manager, Status
from benchmarks.harness import BenchError, Benchmark, Context, ms, percentile, run_loop

_READER: Final = (
    "import sys, time\nfor line in sys.stdin:\n    print(time.time() - float(line), flush=True)\n"
)
_SENDER: Final = """
import asyncio, random, sys, time
from aiobgproc import Manager
async def main(store, process_id, count):
    rng = random.Random(11)
    async with Manager(store, run=False) as client:
        for _ in range(count):
            await asyncio.sleep(rng.uniform(0.0, 0.1))
            await client.send_input(process_id, f"{time.time()!r}\\n".encode())
        await client.close_input(process_id)
asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def _measure(context: Context) -> dict[str, Any]:
    count = context.sizes.b6_n * 3
    location = context.stores.fresh()
    async with Manager(location) as manager:
        process_id = await manager.start(Command([sys.executable, "-c", _READER], stdin=PIPE))
        sender = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _SENDER, location, process_id, str(count)
        )
        if await sender.wait() != 0:
            raise BenchError("b11: the sending process failed")
        info = await manager.wait_for(process_id, timeout=60)
        if info.status is not Status.FINISHED:
            raise BenchError(f"b11: the reading command ended {info.status}")
        delays = [float(line) for line in (await manager.output(process_id)).split()]
    if len(delays) != count:
        raise BenchError(f"b11: {len(delays)} of {count} lines arrived")
    return {
        "b11_input_median_ms": ms(statistics.median(delays)),
        "b11_input_p95_ms": ms(percentile(delays, 95)),
    }


def run(context: Context) -> dict[str, Any]:
    return run_loop(_measure(context))


BENCHMARK: Final = Benchmark(
    "b11",
    run,
    keys=("b11_input_median_ms", "b11_input_p95_ms"),
    targets={"b11_input_median_ms": ("<", 50.0, "(cross-process, SQLite)")},
)
