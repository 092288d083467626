"""B7 reused executors: B3's one-step processes (a trivial step, its module preloaded, at
concurrency = CPU count, end to end) with ``Manager(reuse_executors=100)``, vs huey running
the same no-op in its warm workers (``huey_consumer -k process -w 2``, as in B3), in pairs
measured side by side (ours, huey, ours, huey...), and vs ours with a fresh executor per
process (B3's setting) in the same pairs: what reuse buys. And the store's own ceiling for
the same processes (benchmarks/store_ceiling.py: its writes and reads alone, no executor):
what any manager in one event loop could reach on it.
"""

from __future__ import annotations

import statistics
from typing import Any, Final

from benchmarks.b3_peers import HueyPeer
from benchmarks.b3_throughput import pair_ratios, step_throughput
from benchmarks.harness import Benchmark, Context, ratio, rounded, run_loop, say
from benchmarks.store_ceiling import store_ceiling

REUSE: Final = 100


def run(context: Context) -> dict[str, Any]:
    sizes, stores = context.sizes, context.stores
    reused: list[float] = []
    fresh: list[float] = []
    huey_rates: list[float | None] = []
    huey = HueyPeer(context)
    for rep in range(sizes.reps):
        reused.append(run_loop(step_throughput(stores, sizes.b3_n, REUSE)))
        _, noop = huey.measure(spawn=False)
        huey_rates.append(noop)
        fresh.append(run_loop(step_throughput(stores, sizes.b3_n)))
        say(
            f"  b7 rep {rep + 1}: reused {reused[-1]:.0f}/s, huey in-process"
            f" {noop or float('nan'):.0f}/s, fresh {fresh[-1]:.0f}/s"
        )
    ceiling = run_loop(store_ceiling(stores.fresh(), sizes.b3_n))
    say(f"  b7 store ceiling: {ceiling:.0f}/s")
    huey_ratio, ratio_range = pair_ratios(reused, huey_rates)
    gain, gain_range = pair_ratios(reused, list(fresh))
    known = [rate for rate in huey_rates if rate is not None]
    return {
        "b7_ratio_vs_huey_inproc": huey_ratio,
        "b7_ratio_vs_huey_inproc_range": ratio_range,
        "b7_ours_per_s": rounded(statistics.median(reused)),
        "b7_fresh_per_s": rounded(statistics.median(fresh)),
        "b7_huey_inproc_per_s": rounded(statistics.median(known) if known else None),
        "b7_ratio_vs_fresh": gain,
        "b7_ratio_vs_fresh_range": gain_range,
        "b7_store_ceiling_per_s": rounded(ceiling),
        "b7_ratio_of_store_ceiling": ratio(statistics.median(reused), ceiling),
    }


BENCHMARK: Final = Benchmark(
    "b7",
    run,
    keys=(
        "b7_ratio_vs_huey_inproc",
        "b7_ratio_vs_huey_inproc_range",
        "b7_ours_per_s",
        "b7_fresh_per_s",
        "b7_huey_inproc_per_s",
        "b7_ratio_vs_fresh",
        "b7_ratio_vs_fresh_range",
        "b7_store_ceiling_per_s",
        "b7_ratio_of_store_ceiling",
    ),
    targets={"b7_ratio_vs_huey_inproc": (">=", 1.5, "")},
)
