"""B3 throughput: one-step processes at concurrency = CPU count (start all, then wait for all,
in order), vs huey (SqliteHuey, ``huey_consumer -k process -w 2`` at its tightest polling),
end to end from the first enqueue until every result was read back: (a) tasks that each
spawn ``/bin/true``, (b) a no-op task run in huey's warm workers (tasks in
benchmarks/huey_tasks.py).

The manager preloads the step's module (``Manager(preload=[...])``), as huey's workers import
their tasks module once.

On PostgreSQL (``--store postgresql://...``) B3 also compares with procrastinate (its tasks
in benchmarks/procrastinate_tasks.py) on the same server, in a database of its own
(``bench_procrastinate_<random>``, dropped at the end), its worker a subprocess with
concurrency = CPU count: ``b3_pg_ours_per_s`` vs ``b3_procrastinate_spawn_per_s`` (a task
that runs ``/bin/true``) and ``b3_procrastinate_inproc_per_s`` (a no-op task in the warm
worker), end to end from the first defer until every job succeeded. The peers are measured
even when ours fails there.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Final

from aiobgproc import Manager, Process, Step
from benchmarks.b3_peers import huey_figures, postgres_peers
from benchmarks.harness import (
    TRIVIAL_MODULE,
    TRIVIAL_STEP,
    Benchmark,
    Context,
    PartialFigures,
    check_ended,
    one_step,
    ratio,
    rounded,
    run_loop,
    say,
)
from benchmarks.stores import AnyStores, PostgresStores


async def _step_throughput(stores: AnyStores, count: int) -> float:
    # preload: the steps' module is imported once, in the warm executor, as huey's workers
    # import their tasks once (docs/steps.md).
    async with Manager(
        stores.fresh(), concurrency=os.cpu_count() or 1, preload=[TRIVIAL_MODULE]
    ) as manager:
        for _ in range(2):
            await one_step(manager)
        work = Process([Step(TRIVIAL_STEP)])
        started = time.perf_counter()
        ids = [await manager.start(work, {"x": index}) for index in range(count)]
        # On PostgreSQL a process that never finishes (a lost run) shows sooner.
        timeout = 60.0 if isinstance(stores, PostgresStores) else 300.0
        for process_id in ids:
            await check_ended(manager, process_id, timeout=timeout)
        return count / (time.perf_counter() - started)


def run(context: Context) -> dict[str, Any]:
    sizes, stores = context.sizes, context.stores
    ours: list[float] = []
    ours_rate: float | None = None
    failure: Exception | None = None
    try:
        for rep in range(sizes.reps):
            ours.append(run_loop(_step_throughput(stores, sizes.b3_n)))
            say(f"  b3 rep {rep + 1}: ours {ours[-1]:.0f}/s")
        ours_rate = statistics.median(ours)
    except Exception as exc:
        if not isinstance(stores, PostgresStores):
            raise
        # On PostgreSQL the peers' figures are worth having all the same.
        failure = exc
        say(f"  b3: ours failed ({type(exc).__name__}: {exc}); the peers are measured anyway")
    spawn_rate, noop_rate = huey_figures(context)
    figures = {
        "b3_ratio_vs_huey": ratio(ours_rate, spawn_rate),
        "b3_ratio_vs_huey_inproc": ratio(ours_rate, noop_rate),
        "b3_ours_per_s": rounded(ours_rate),
        "b3_huey_spawn_per_s": rounded(spawn_rate),
        "b3_huey_inproc_per_s": rounded(noop_rate),
    }
    if isinstance(stores, PostgresStores):
        spawn_rate, noop_rate = postgres_peers(context, stores)
        figures.update(
            {
                "b3_pg_ours_per_s": rounded(ours_rate),
                "b3_procrastinate_spawn_per_s": rounded(spawn_rate),
                "b3_procrastinate_inproc_per_s": rounded(noop_rate),
                "b3_ratio_vs_procrastinate": ratio(ours_rate, spawn_rate),
                "b3_ratio_vs_procrastinate_inproc": ratio(ours_rate, noop_rate),
            }
        )
    if failure is not None:
        raise PartialFigures(figures, failure)
    return figures


BENCHMARK: Final = Benchmark(
    "b3",
    run,
    keys=(
        "b3_ratio_vs_huey",
        "b3_ratio_vs_huey_inproc",
        "b3_ours_per_s",
        "b3_huey_spawn_per_s",
        "b3_huey_inproc_per_s",
    ),
    postgres_keys=(
        "b3_pg_ours_per_s",
        "b3_procrastinate_spawn_per_s",
        "b3_procrastinate_inproc_per_s",
        "b3_ratio_vs_procrastinate",
        "b3_ratio_vs_procrastinate_inproc",
    ),
    targets={
        "b3_ratio_vs_huey": (">=", 1.0, ""),
        "b3_ratio_vs_huey_inproc": (">=", 0.6, "stretch"),
    },
)
