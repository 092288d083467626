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
from benchmarks.b3_peers import HueyPeer, postgres_peers
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


async def step_throughput(stores: AnyStores, count: int, reuse_executors: int = 1) -> float:
    """One-step processes per second, end to end (``reuse_executors``: B7's)."""
    # preload: the steps' module is imported once, in the warm executor, as huey's workers
    # import their tasks once (docs/steps.md).
    async with Manager(
        stores.fresh(),
        concurrency=os.cpu_count() or 1,
        preload=[TRIVIAL_MODULE],
        reuse_executors=reuse_executors,
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


def _median(rates: list[float | None]) -> float | None:
    known = [rate for rate in rates if rate is not None]
    return statistics.median(known) if known else None


def pair_ratios(ours: list[float], theirs: list[float | None]) -> tuple[float | None, Any]:
    """The median of the ratios of each pair (ours, theirs measured next to it), and their
    range [lowest, highest]; None and None without the peer."""
    ratios = [mine / peer for mine, peer in zip(ours, theirs, strict=False) if peer]
    if not ratios:
        return None, None
    return round(statistics.median(ratios), 3), [round(min(ratios), 3), round(max(ratios), 3)]


def run(context: Context) -> dict[str, Any]:
    """ours, huey, ours, huey, ...: each ratio is of a pair measured side by side, so that
    the machine's drift over the run moves both (issue 19)."""
    sizes, stores = context.sizes, context.stores
    ours: list[float] = []
    spawn_rates: list[float | None] = []
    noop_rates: list[float | None] = []
    failure: Exception | None = None
    huey = HueyPeer(context)
    for rep in range(sizes.reps):
        if failure is None:
            try:
                ours.append(run_loop(step_throughput(stores, sizes.b3_n)))
            except Exception as exc:
                if not isinstance(stores, PostgresStores):
                    raise
                # On PostgreSQL the peers' figures are worth having all the same.
                failure = exc
                say(f"  b3: ours failed ({type(exc).__name__}: {exc}); the peers go on")
        spawn, noop = huey.measure()
        spawn_rates.append(spawn)
        noop_rates.append(noop)
        say(
            f"  b3 rep {rep + 1}: ours {ours[-1] if len(ours) > rep else float('nan'):.0f}/s,"
            f" huey spawn {spawn or float('nan'):.0f}/s, in-process {noop or float('nan'):.0f}/s"
        )
    ours_rate = statistics.median(ours) if ours and failure is None else None
    spawn_rate = _median(spawn_rates)
    noop_rate = _median(noop_rates)
    spawn_ratio, spawn_range = pair_ratios(ours, spawn_rates) if ours_rate else (None, None)
    noop_ratio, noop_range = pair_ratios(ours, noop_rates) if ours_rate else (None, None)
    figures = {
        "b3_ratio_vs_huey": spawn_ratio,
        "b3_ratio_vs_huey_range": spawn_range,
        "b3_ratio_vs_huey_inproc": noop_ratio,
        "b3_ratio_vs_huey_inproc_range": noop_range,
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
        "b3_ratio_vs_huey_range",
        "b3_ratio_vs_huey_inproc",
        "b3_ratio_vs_huey_inproc_range",
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
        "b3_ratio_vs_procrastinate": (">=", 1.0, "(PostgreSQL)"),
        "b3_ratio_vs_huey": (">=", 1.3, ""),  # issue 19
        "b3_ratio_vs_huey_inproc": (">=", 0.6, "stretch"),
    },
)
