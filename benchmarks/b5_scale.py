"""B5 store scale: info(random id) and list(status="finished", limit=100), p50/p99, with
``b5_rows`` processes stored (100,000 in full and quick mode, 2,000 in smoke mode).

The store is filled through the public API alone, oldest first:

- the bulk (all but the newest ``b5_run``): ``Command(["true"])`` started by a
  ``Manager(run=False)``, which runs nothing, and cancelled while queued, one in 50 left
  ``queued``: terminal history and a small backlog, ~10,000 a second on SQLite (16 at once);
- the newest ``b5_run`` (20,000 in full mode, 5,000 in quick, 300 in smoke) run for real by
  a Manager at concurrency 32: ``true`` (``finished``), one in ten ``false`` (``error``).

info() reads a random one of all the rows; list(status="finished") pages the newest finished
processes, which lie among the newest rows as in a store whose history is mostly finished.
Filling takes ~25 s in full mode on a 2-core machine with SQLite, ~2 minutes on PostgreSQL
(docs/benchmarks.md). Before the benchmarks were split into modules, B5 inserted its rows
into the store's tables directly.
"""

from __future__ import annotations

import functools
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiobgproc import Command, Manager, ProcessInfo, Status
from benchmarks.harness import (
    BenchError,
    Benchmark,
    Context,
    gather_limited,
    ms,
    percentile,
    run_command,
    run_loop,
    say,
)

BULK_CONCURRENCY: Final = 16
RUN_CONCURRENCY: Final = 32
QUEUED_EVERY: Final = 50  # one bulk process in this many stays queued
ERROR_EVERY: Final = 10  # one process run in this many exits 1


async def _fill(location: str, rows: int, run: int) -> list[str]:
    """Store ``rows`` processes, the newest ``run`` of them run for real; their ids."""
    ids: list[str] = []
    async with Manager(location, run=False) as client:

        async def bulk(index: int) -> None:
            process_id = await client.start(Command(["true"]))
            if index % QUEUED_EVERY:
                await client.cancel(process_id)
            ids.append(process_id)

        await gather_limited(rows - run, BULK_CONCURRENCY, bulk)
    async with Manager(location, concurrency=RUN_CONCURRENCY) as manager:

        async def real(index: int) -> None:
            if index % ERROR_EVERY == ERROR_EVERY - 1:
                ids.append(await run_command(manager, ["false"], expected=Status.ERROR))
            else:
                ids.append(await run_command(manager, ["true"]))

        await gather_limited(run, RUN_CONCURRENCY, real)
    return ids


async def _timed(calls: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    """The seconds each of ``calls`` awaits of ``call()`` took."""
    samples: list[float] = []
    for _ in range(calls):
        began = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - began)
    return samples


async def _measure(context: Context) -> dict[str, Any]:
    sizes = context.sizes
    location = context.stores.fresh()
    started = time.perf_counter()
    ids = await _fill(location, sizes.b5_rows, sizes.b5_run)
    say(
        f"  b5: {len(ids)} processes stored in {time.perf_counter() - started:.1f} s"
        f" ({sizes.b5_run} of them run)"
    )
    rng = random.Random(5)
    # run=False: nothing here claims the queued processes; no worker is on this store.
    async with Manager(location, run=False) as manager:

        def info() -> Awaitable[ProcessInfo]:
            return manager.info(rng.choice(ids))

        page = functools.partial(manager.list, status="finished", limit=100)
        for _ in range(20):  # warm the page cache and the connection
            await info()
            found = await page()
        if len(found) != 100 or any(item.status != "finished" for item in found):
            raise BenchError("b5: list(status='finished', limit=100) returned the wrong rows")
        info_s = await _timed(sizes.b5_calls, info)
        list_s = await _timed(sizes.b5_calls, page)
    return {
        "b5_info_p50_ms": ms(statistics.median(info_s)),
        "b5_info_p99_ms": ms(percentile(info_s, 99)),
        "b5_list_p50_ms": ms(statistics.median(list_s)),
        "b5_list_p99_ms": ms(percentile(list_s, 99)),
        "b5_rows": len(ids),
    }


def run(context: Context) -> dict[str, Any]:
    return run_loop(_measure(context))


BENCHMARK: Final = Benchmark(
    "b5",
    run,
    keys=("b5_info_p50_ms", "b5_info_p99_ms", "b5_list_p50_ms", "b5_list_p99_ms", "b5_rows"),
    targets={"b5_info_p99_ms": ("<", 2.0, "")},
)
