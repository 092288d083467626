"""B9 listing with filters: list() with each single filter (status, queue, label, key, meta,
before), a page of 100 (the default), p99 of each, with ``b5_rows`` processes stored
(100,000 in full and quick mode, 2,000 in smoke mode); ``b9_list_p99_ms`` is the worst
filter's.

The store is filled through the public API: processes with a label (1,000 of them), a meta
``{"user": ...}`` (1,000 users), a key each, over 20 queues, started by a
``Manager(run=False)`` and half of them cancelled (so that status filters pick among both).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, Final

from aiobgproc import Command, Manager
from benchmarks.harness import (
    Benchmark,
    Context,
    gather_limited,
    ms,
    percentile,
    run_loop,
    say,
)

FILL_CONCURRENCY: Final = 16
KINDS: Final = 1000  # labels and users
FILTERS: Final = ("status", "queue", "label", "key", "meta", "before")


async def _fill(location: str, rows: int) -> list[str]:
    ids: list[str] = [""] * rows
    async with Manager(location, run=False) as client:

        async def one(index: int) -> None:
            process_id = await client.start(
                Command(["true"]),
                label=f"label{index % KINDS}",
                meta={"user": f"u{index % KINDS}", "n": index},
                key=f"key{index}",
                queue=f"q{index % 20:02d}",
            )
            if index % 2:
                await client.cancel(process_id)
            ids[index] = process_id

        await gather_limited(rows, FILL_CONCURRENCY, one)
    return ids


async def _measure(context: Context) -> dict[str, Any]:
    sizes = context.sizes
    location = context.stores.fresh()
    began = time.perf_counter()
    ids = await _fill(location, sizes.b5_rows)
    say(f"  b9: {len(ids)} processes stored in {time.perf_counter() - began:.1f} s")
    rng = random.Random(9)
    filters: dict[str, Callable[[], dict[str, Any]]] = {
        "status": lambda: {"status": "queued"},
        "queue": lambda: {"queue": f"q{rng.randrange(20):02d}"},
        "label": lambda: {"label": f"label{rng.randrange(KINDS)}"},
        "key": lambda: {"key": f"key{rng.randrange(len(ids))}"},
        "meta": lambda: {"meta": {"user": f"u{rng.randrange(KINDS)}"}},
        "before": lambda: {"before": rng.choice(ids)},
    }
    by_filter: dict[str, float] = {}
    async with Manager(location, run=False) as client:
        for name, make in filters.items():
            for _ in range(20):  # warm the page cache and the connection
                await client.list(**make())
            samples = []
            for _ in range(sizes.b5_calls):
                options = make()
                started = time.perf_counter()
                await client.list(**options)
                samples.append(time.perf_counter() - started)
            by_filter[name] = ms(percentile(samples, 99))
    return {
        "b9_list_p99_ms": max(by_filter.values()),
        **{f"b9_list_{name}_p99_ms": value for name, value in by_filter.items()},
        "b9_rows": len(ids),
    }


def run(context: Context) -> dict[str, Any]:
    return run_loop(_measure(context))


BENCHMARK: Final = Benchmark(
    "b9",
    run,
    keys=(
        "b9_list_p99_ms",
        *(f"b9_list_{name}_p99_ms" for name in FILTERS),
        "b9_rows",
    ),
    targets={"b9_list_p99_ms": ("<", 5.0, "")},
)
