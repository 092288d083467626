"""The aiobgproc benchmark suite (issue 6): each figure next to a baseline measured by this
script, in the same run, on the same machine.

    python benchmarks/run.py            # full mode (a few minutes)
    python benchmarks/run.py --quick    # under 2 minutes on a 2-core machine
    python benchmarks/run.py --quick --json      # one JSON object on stdout, nothing else
    python benchmarks/run.py --only b1,b3        # a subset, for development
    python benchmarks/run.py --smoke --json      # a few seconds: the test suite's check

Each benchmark is a module of this folder, its docstring the full description:

B1 commands     (b1_commands.py) ``/bin/true`` through start + wait_for at concurrency 32,
                processes/s, vs raw ``asyncio.create_subprocess_exec`` + wait.
B2 latency      (b2_latency.py) a one-step process with a trivial step, start -> wait_for,
                p50/p95, warm and ``warm=False``, vs spawning ``python -I -S -c pass``.
B3 throughput   (b3_throughput.py, peers in b3_peers.py) one-step processes at concurrency =
                CPU count, end to end, vs huey (a task spawning ``/bin/true``; a no-op in its
                warm workers), and vs procrastinate on PostgreSQL.
B4 output       (b4_output.py) ``head -c N /dev/zero`` into the store, MB/s vs a raw asyncio
                pipe read, and the manager process's peak RSS growth.
B5 store scale  (b5_scale.py) info(random id) and list(status="finished", limit=100),
                p50/p99, with 100,000 processes stored (2,000 in smoke mode), filled through
                the public API.
B6 notice       (b6_notice.py) a worker subprocess runs ``true``; a ``Manager(run=False)``
                here waits for it: delay from the recorded finished_at to wait_for returning.
B7 reuse        (b7_reuse.py) B3's processes with ``Manager(reuse_executors=100)``, vs huey's
                no-op in its warm workers and vs B3's fresh executor per process, in pairs.
B8 claim        (b8_claim.py) one claim's p50/p99 with 100,000 processes queued over 20
                queues and 10,000 delayed.
B9 listing      (b9_list.py) list() with each single filter at 100,000 processes: p99 of
                each, and of the worst (target: under 5 ms).
B10 schedules   (b10_schedule.py) an every=1 schedule fired by three workers: the delay
                from each due time to its process's creation, median and p95.
B11 input       (b11_input.py) send_input() from another OS process to a command's stdin:
                the delay from the call to the command reading the bytes, median and p95.
B12 events      (b12_events.py) events() here, changes made by another OS process: the
                delay from the commit to the subscriber, median and p95.
B13 tail        (b13_tail.py) output(tail=1000) and output(stream="stderr", tail=10) of a
                200 MB log (8 MB in smoke mode): median ms, and Python's allocation peak.

What they share (sizes per mode, the --loop runner, CPU metering, timing helpers) is in
harness.py, the store locations in stores.py, the table and the run's description in
report.py. They use aiobgproc's public API only (``from aiobgproc import ...``).

MB means MiB (2**20 bytes) throughout; 1 GB of output is 1 GiB. Throughputs (B1, B3) are
the median of the repetitions. Other workloads on the machine skew the figures: every
benchmark meters the CPU used outside this script's process tree while it runs
(``interference_pct``, share of all CPUs), and a warning goes to stderr above 10 %.

``--store PATH_OR_URL`` names the store file the benchmarks use (default: a file in a
temporary directory). It must not exist: it is created afresh for each benchmark and
deleted at the end.

``--store postgresql://...`` runs them on the PostgreSQL store (asyncpg): each benchmark
gets a schema of its own (``?schema=bench_<random>``, dropped when it ends), and B3 compares
with procrastinate too (``b3_pg_ours_per_s``, ``b3_procrastinate_*``). The PostgreSQL
server's CPU time (postmaster and backends, when it runs on this machine) counts as this
script's in ``interference_pct``; ``postgres_cpu_pct`` reports it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import (  # noqa: E402
    b1_commands,
    b2_latency,
    b3_throughput,
    b4_output,
    b5_scale,
    b6_notice,
    b7_reuse,
    b8_claim,
    b9_list,
    b10_schedule,
    b11_input,
    b12_events,
    b13_tail,
)
from benchmarks.harness import (  # noqa: E402
    CLEANING,
    INTERFERENCE_WARN_PCT,
    LOOPS,
    SIZES,
    BenchError,
    Benchmark,
    Children,
    Context,
    Interference,
    PartialFigures,
    interrupt_on_sigterm,
    loop_name,
    say,
    set_loop,
    wait_quiet,
)
from benchmarks.report import machine, missed, postgres_versions, source, table  # noqa: E402
from benchmarks.stores import AnyStores, PostgresStores, make_stores  # noqa: E402

BENCHMARKS: Final[dict[str, Benchmark]] = {
    module.BENCHMARK.name: module.BENCHMARK
    for module in (
        b1_commands,
        b2_latency,
        b3_throughput,
        b4_output,
        b5_scale,
        b6_notice,
        b7_reuse,
        b8_claim,
        b9_list,
        b10_schedule,
        b11_input,
        b12_events,
        b13_tail,
    )
}
TARGETS: Final = {
    key: target for benchmark in BENCHMARKS.values() for key, target in benchmark.targets.items()
}


def run_one(benchmark: Benchmark, context: Context) -> tuple[dict[str, Any], bool]:
    """Its figures, and whether it ran to the end: a failed benchmark's figures are null
    (but those a PartialFigures brings), the reason on stderr."""
    postgres = isinstance(context.stores, PostgresStores)
    keys = benchmark.keys + (benchmark.postgres_keys if postgres else ())
    try:
        return benchmark.run(context), True
    except PartialFigures as exc:
        say(f"{benchmark.name} failed: {exc}")
        return {**dict.fromkeys(keys), **exc.figures}, False
    except BenchError as exc:
        say(f"{benchmark.name} failed: {exc}")
    except Exception:
        say(f"{benchmark.name} failed:\n{traceback.format_exc()}")
    return dict.fromkeys(keys), False


def run_all(options: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """The figures, and whether every benchmark ran."""
    mode = "smoke" if options.smoke else "quick" if options.quick else "full"
    figures: dict[str, Any] = {
        "mode": mode,
        "loop": loop_name(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "source": source(),
    }
    interference: dict[str, float] = {}
    server_cpu: dict[str, float] = {}
    if options.wait_quiet > 0:
        figures["busy_before_pct"] = wait_quiet(options.wait_quiet)
    children = Children()
    scratch = Path(tempfile.mkdtemp(prefix="aiobgproc-bench-"))
    stores: AnyStores | None = None
    complete = True
    try:
        stores = make_stores(options.store, scratch)
        server = stores.server if isinstance(stores, PostgresStores) else None
        if isinstance(stores, PostgresStores):
            figures["store"] = "postgresql"
            figures["machine"].update(postgres_versions(stores))
        context = Context(SIZES[mode], stores, children, scratch)
        for name in options.only:
            say(f"{name} ...")
            meter = Interference(server)
            began = time.monotonic()
            found, ran = run_one(BENCHMARKS[name], context)
            figures.update(found)
            complete = complete and ran
            interference[name] = meter.percent()
            if isinstance(stores, PostgresStores):
                server_cpu[name] = meter.server_percent()
            stores.remove()  # each benchmark's store (file or schemas) goes when it ends
            say(f"{name} done in {time.monotonic() - began:.1f} s")
            if interference[name] > INTERFERENCE_WARN_PCT:
                say(
                    f"  warning: other processes used {interference[name]} % of the CPUs"
                    f" during {name}: its figures are skewed"
                )
    finally:
        CLEANING.set()
        children.close()
        if stores is not None:
            stores.remove()
        shutil.rmtree(scratch, ignore_errors=True)
    figures["interference_pct"] = interference
    if server_cpu:
        figures["postgres_cpu_pct"] = server_cpu
    figures["targets_missed"] = missed(TARGETS, figures)
    return figures, complete


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller runs: under 2 minutes")
    size.add_argument("--smoke", action="store_true", help="tiny runs: a few seconds (tests)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument(
        "--store",
        help="store path or sqlite:/// URL (must not exist), or a postgresql:// URL (each"
        " benchmark then uses a fresh schema in that database)",
    )
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="e.g. b1,b3")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for other processes to use under 10%% of the CPUs",
    )
    parser.add_argument(
        "--loop", choices=LOOPS, default="asyncio", help="the event loop to run on (B1-B6)"
    )
    options = parser.parse_args(argv)
    set_loop(options.loop)
    only = [name.strip().lower() for name in options.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown or not only:
        parser.error(f"--only takes some of {','.join(BENCHMARKS)}, not {options.only!r}")
    options.only = [name for name in BENCHMARKS if name in only]
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    interrupt_on_sigterm()
    # Only the result may reach stdout: until then, whatever writes to fd 1 (this process
    # or a child that inherits it) goes to stderr.
    sys.stdout.flush()
    stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        figures, complete = run_all(options)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except BenchError as exc:
        say(f"error: {exc}")
        return 2
    finally:
        sys.stdout.flush()
        os.dup2(stdout, 1)
        os.close(stdout)
    output = json.dumps(figures) if options.json else table(figures, list(BENCHMARKS), TARGETS)
    print(output, flush=True)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
